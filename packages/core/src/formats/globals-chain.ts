import type { GlobalHandler } from "./pickle/global-handler.js";

/** Looks up the handler of an allow-listed pickle global, or undefined when it is not one. */
export type GlobalLookup = (module: string, name: string) => GlobalHandler | undefined;

/**
 * Combines allow-lists (torch's, numpy's, DCP's): the first that knows a global answers, so
 * each format composes only the families its files use.
 */
export function chain(...lookups: readonly GlobalLookup[]): GlobalLookup {
  return (module, name) => {
    for (const lookup of lookups) {
      const handler = lookup(module, name);
      if (handler) return handler;
    }
    return undefined;
  };
}
