import * as tf from "@tensorflow/tfjs-core";
import { SavepointError } from "@savepoint/core";
import { adapterRecipes, DEFAULT_SWIFTSHADER_ICD, type AdapterRecipe, type NodeAdapterChoice } from "./adapter-choices.js";
import { loadOptional } from "./load-optional.js";
import { registerWebGpuFactory, type WebGpuModule } from "./register-factory.js";

/** The parts of the `webgpu` package (Dawn for Node) used here. */
interface DawnModule {
  create(flags: string[]): DawnGpu;
  globals: Record<string, unknown>;
}

/** `navigator.gpu` as Dawn provides it. */
export interface DawnGpu {
  requestAdapter(options?: Record<string, unknown>): Promise<DawnAdapter | null>;
}

interface DawnAdapter {
  readonly info?: { vendor?: string; architecture?: string; device?: string; description?: string };
}

/** Options of {@link setupNodeWebGpu}. */
export interface NodeWebGpuOptions {
  /**
   * Which adapter: `"default"` (the machine's GPU through Dawn's default backend), `"swiftshader"`
   * (Chromium's SwiftShader Vulkan driver, a full WebGPU on the CPU), `"llvmpipe"` (Mesa on the CPU
   * through OpenGL ES, WebGPU compatibility mode), or `"auto"`: those in that order, first that works.
   * @default process.env.SAVEPOINT_WEBGPU_ADAPTER ?? "auto"
   */
  adapter?: NodeAdapterChoice;
  /** Extra flags for Dawn's `create()`, e.g. `["enable-dawn-features=allow_unsafe_apis"]`. @default [] */
  dawnFlags?: string[];
  /** SwiftShader's Vulkan ICD file. @default "/usr/lib/chromium/vk_swiftshader_icd.json" */
  swiftshaderIcd?: string;
  /** Make `webgpu` tfjs's active backend (`tf.setBackend`). @default true */
  setBackend?: boolean;
}

/** What {@link setupNodeWebGpu} found. */
export interface NodeWebGpu {
  /** The recipe that gave an adapter. */
  adapter: Exclude<NodeAdapterChoice, "auto">;
  /** Adapter description from Dawn, e.g. `"google swiftshader"`. */
  description: string;
  featureLevel: "core" | "compatibility";
  /** The `navigator.gpu` object installed for tfjs. */
  gpu: DawnGpu;
}

let current: Promise<NodeWebGpu> | null = null;

/**
 * Gives TensorFlow.js a real WebGPU in Node: loads Dawn (the `webgpu` package), finds an adapter,
 * installs `navigator.gpu` and the `GPU*` globals that tfjs-backend-webgpu expects, registers its
 * `webgpu` backend (which registers itself only when `navigator.gpu` exists at import) and makes
 * it active. Idempotent: later calls return the first result.
 *
 * @example
 * ```ts
 * import { setupNodeWebGpu } from "@savepoint/backend-webgpu/node";
 * const { description } = await setupNodeWebGpu(); // e.g. on a machine without a GPU: SwiftShader
 * const fabric = new Fabric({ backend: webgpuBackend() });
 * ```
 */
export function setupNodeWebGpu(options: NodeWebGpuOptions = {}): Promise<NodeWebGpu> {
  current ??= setup(options).catch((err: unknown) => {
    current = null;
    throw err;
  });
  return current;
}

async function setup(options: NodeWebGpuOptions): Promise<NodeWebGpu> {
  const choice = options.adapter ?? (process.env.SAVEPOINT_WEBGPU_ADAPTER as NodeAdapterChoice | undefined) ?? "auto";
  const recipes = adapterRecipes(choice, options.swiftshaderIcd ?? DEFAULT_SWIFTSHADER_ICD);
  if (recipes.length === 0) throw new SavepointError(`unknown WebGPU adapter "${choice}"; use "auto", "default", "swiftshader" or "llvmpipe".`, { subject: choice });
  const dawn = await loadOptional<DawnModule>("webgpu", "WebGPU in Node");
  for (const [name, value] of Object.entries(dawn.globals)) if (!(name in globalThis)) (globalThis as Record<string, unknown>)[name] = value;

  const tried: string[] = [];
  for (const recipe of recipes) {
    if (recipe.unavailable) {
      tried.push(`${recipe.name}: ${recipe.unavailable}`);
      continue;
    }
    const found = await tryRecipe(dawn, recipe, options.dawnFlags ?? []);
    if (!found) {
      tried.push(`${recipe.name}: no adapter`);
      continue;
    }
    installNavigatorGpu(found.gpu);
    const mod = await loadOptional<WebGpuModule>("@tensorflow/tfjs-backend-webgpu", "the WebGPU backend");
    registerWebGpuFactory(mod, found.gpu);
    if (options.setBackend !== false && !(await tf.setBackend("webgpu"))) {
      // setBackend reports a failed initialisation by returning false (and logging), not by throwing.
      throw new SavepointError(`tfjs could not start its webgpu backend on the ${recipe.name} adapter (${found.description}); see the warning tfjs logged above. Try another adapter: setupNodeWebGpu({ adapter: "swiftshader" | "llvmpipe" }).`, { subject: "webgpu" });
    }
    return { adapter: recipe.name, description: found.description, featureLevel: recipe.featureLevel ?? "core", gpu: found.gpu };
  }
  throw new SavepointError(
    `no WebGPU adapter in Node (${tried.join("; ")}). On a machine without a GPU, install Chromium's SwiftShader (Debian: apt-get install chromium) or Mesa (apt-get install libegl-mesa0 libgl1-mesa-dri), then retry.`,
    { subject: "webgpu" },
  );
}

async function tryRecipe(dawn: DawnModule, recipe: AdapterRecipe, extraFlags: string[]): Promise<{ gpu: DawnGpu; description: string } | null> {
  // Drivers read these when Dawn first starts them, which happens in create()/requestAdapter().
  for (const [k, v] of Object.entries(recipe.env)) process.env[k] ??= v;
  const raw = dawn.create([...recipe.flags, ...extraFlags]);
  const featureLevel = recipe.featureLevel;
  // tfjs asks for an adapter without a feature level; compatibility-only adapters need one.
  const gpu: DawnGpu = featureLevel
    ? Object.assign(raw, { requestAdapter: ((orig) => (o: Record<string, unknown> = {}) => orig({ ...o, featureLevel }))(raw.requestAdapter.bind(raw)) })
    : raw;
  const adapter = await gpu.requestAdapter().catch(() => null);
  if (!adapter) return null;
  const info = adapter.info ?? {};
  const description = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(" ").trim() || recipe.name;
  return { gpu, description };
}

/** `navigator.gpu` for tfjs: Node 20 has no `navigator`; Node 21+ has one without `gpu`. */
function installNavigatorGpu(gpu: DawnGpu): void {
  const g = globalThis as { navigator?: object };
  if (!g.navigator) Object.defineProperty(globalThis, "navigator", { value: {}, configurable: true, writable: true });
  Object.defineProperty(g.navigator, "gpu", { value: gpu, configurable: true, writable: true });
}
