import { existsSync } from "node:fs";

/** Which WebGPU adapter Dawn should give tfjs in Node. */
export type NodeAdapterChoice = "auto" | "default" | "swiftshader" | "llvmpipe";

/** One way of getting an adapter from Dawn: environment, `create()` flags, request options. */
export interface AdapterRecipe {
  readonly name: Exclude<NodeAdapterChoice, "auto">;
  /** Environment variables Dawn's drivers read when they start (set only where unset). */
  readonly env: Record<string, string>;
  readonly flags: string[];
  readonly featureLevel?: "core" | "compatibility";
  /** Why this recipe cannot work here, found before trying (e.g. a missing driver file). */
  readonly unavailable?: string;
}

/** Chromium's SwiftShader Vulkan driver as Debian's `chromium` package installs it. */
export const DEFAULT_SWIFTSHADER_ICD = "/usr/lib/chromium/vk_swiftshader_icd.json";

/**
 * The recipes for a choice, in the order "auto" tries them: the machine's own GPU first, then
 * SwiftShader (a complete WebGPU on the CPU, through Vulkan), then Mesa's llvmpipe through OpenGL
 * ES, which Dawn offers only in compatibility mode.
 */
export function adapterRecipes(choice: NodeAdapterChoice, swiftshaderIcd: string = DEFAULT_SWIFTSHADER_ICD): AdapterRecipe[] {
  const all: AdapterRecipe[] = [
    { name: "default", env: {}, flags: [] },
    {
      name: "swiftshader",
      env: { VK_ICD_FILENAMES: swiftshaderIcd },
      flags: ["backend=vulkan"],
      unavailable: existsSync(swiftshaderIcd) ? undefined : `${swiftshaderIcd} is missing (Debian: apt-get install chromium)`,
    },
    { name: "llvmpipe", env: { EGL_PLATFORM: "surfaceless" }, flags: ["backend=opengles"], featureLevel: "compatibility" },
  ];
  return choice === "auto" ? all : all.filter((r) => r.name === choice);
}
