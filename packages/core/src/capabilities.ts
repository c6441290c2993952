import { InterfaceError } from "./errors.js";

/**
 * Checks once, at construction, that `impl` has every member an interface requires, and throws
 * one message listing everything missing (rather than failing later, one member at a time).
 * Returns the optional capabilities that are present.
 */
export function checkInterface<T extends object>(
  kind: string,
  impl: unknown,
  required: readonly string[],
  optional: readonly string[] = [],
): Set<string> {
  if (typeof impl !== "object" || impl === null) {
    throw new InterfaceError(`${kind} must be an object implementing ${required.join(", ")}; got ${describe(impl)}.`);
  }
  const name = (impl as { name?: unknown }).name;
  const label = typeof name === "string" ? `${kind} "${name}"` : kind;
  const missing = required.filter((m) => !(m in impl) || (impl as Record<string, unknown>)[m] === undefined);
  if (missing.length > 0) {
    throw new InterfaceError(
      `${label} is missing ${missing.map((m) => `\`${m}\``).join(", ")}. Implement ${missing.length > 1 ? "them" : "it"} (see the ${kind} interface in @savepoint/core) and check it with the conformance suite from @savepoint/core/testing.`,
      { subject: label },
    );
  }
  return new Set(optional.filter((m) => typeof (impl as Record<string, unknown>)[m] === "function"));
}

/** A short description of a value for messages. */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") {
    const ctor = (value as object).constructor?.name;
    return ctor && ctor !== "Object" ? `an instance of ${ctor}` : "a plain object";
  }
  if (typeof value === "function") return "a function";
  return `${typeof value} ${String(value).slice(0, 40)}`;
}
