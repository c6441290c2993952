/**
 * The contract between the pickle machine and the code that gives meaning to an allow-listed
 * global (torch's rebuild functions, DCP's dataclasses, Python built-ins). A handler turns
 * arguments that are already plain data into a value; it never runs anything from the file.
 */
export interface GlobalHandler {
  /** REDUCE: the global called with the args tuple. */
  call?(args: unknown[]): unknown;
  /** NEWOBJ / NEWOBJ_EX: cls.__new__(cls, *args, **kwargs). */
  construct?(args: unknown[], kwargs?: Record<string, unknown>): unknown;
  /** What the global itself is when pushed, if it is a value (e.g. torch.float32). Default: the handler. */
  value?: unknown;
}
