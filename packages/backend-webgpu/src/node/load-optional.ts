import { SavepointError } from "@savepoint/core";

/**
 * Imports an optional package on first use. A missing package becomes an error that names the
 * `npm install` line fixing it; any other failure (a broken native binary) is reported as is.
 * The name goes through a variable so bundlers do not try to pull Node-only packages into a
 * browser build.
 */
export async function loadOptional<T>(name: string, purpose: string, importer: (name: string) => Promise<unknown> = (n) => import(n)): Promise<T> {
  try {
    return (await importer(name)) as T;
  } catch (err) {
    const code = (err as { code?: string }).code;
    const missing = (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") && String((err as Error).message).includes(name);
    if (missing) throw new SavepointError(`${purpose} needs the optional package ${name}, which is not installed. Install it: npm install ${name}`, { cause: err, subject: name });
    throw new SavepointError(`${purpose}: loading ${name} failed: ${(err as Error).message}`, { cause: err, subject: name });
  }
}
