import { parseArgs, type ParseArgsConfig } from "node:util";

/** One `savepoint` subcommand. To add one, implement this in its own module and list it in cli.ts. */
export interface CliCommand {
  readonly name: string;
  /** One line for `savepoint --help`. */
  readonly summary: string;
  /** The full help of the command. */
  readonly usage: string;
  /** Runs the command with the arguments after its name; resolves with the exit code. */
  run(args: string[]): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/**
 * Parses a subcommand's arguments with `-h/--help` built in and an exact number of positionals.
 * Returns the parsed values, or the exit code after printing help (0) or a usage error (2).
 */
export function parseCommand<O extends Options>(argv: string[], spec: { name: string; usage: string; positionals: readonly string[]; options: O }) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { ...spec.options, help: { type: "boolean", short: "h" } } });
  } catch (err) {
    // Unknown or malformed options are usage errors, reported like the others (exit 2).
    process.stderr.write(`[savepoint] ${spec.name}: ${(err as Error).message}\n\n${spec.usage}\n`);
    return 2;
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  const positionals = parsed.positionals;
  if (values.help) {
    process.stdout.write(`${spec.usage}\n`);
    return 0;
  }
  if (positionals.length !== spec.positionals.length) {
    process.stderr.write(`[savepoint] ${spec.name} takes ${spec.positionals.join(" and ")}.\n\n${spec.usage}\n`);
    return 2;
  }
  return { values: values as Partial<Record<keyof O, string | boolean>>, positionals };
}
