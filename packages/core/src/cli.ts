#!/usr/bin/env node
/**
 * The `savepoint` command. Subcommands live in a table: to add one, implement {@link CliCommand}
 * (name, summary, usage, run) in its own module and list it in COMMANDS.
 */
import { SavepointError } from "./errors.js";
import { convertCommand } from "./cli/convert-command.js";
import { diffCommand } from "./cli/diff-command.js";
import { verifyCommand } from "./cli/verify-command.js";
import { inspectCommand } from "./cli/inspect-command.js";
import { consolidateCommand } from "./cli/consolidate-command.js";
import type { CliCommand } from "./cli/command.js";
import { runCommand } from "./launcher/run-command.js";

const COMMANDS: readonly CliCommand[] = [inspectCommand, convertCommand, consolidateCommand, verifyCommand, diffCommand, runCommand];

function help(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    "Usage: savepoint <command> [options]",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Run `savepoint <command> --help` for the options of a command.",
  ].join("\n");
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "-h" || name === "--help" || name === "help") {
    process.stdout.write(`${help()}\n`);
    return name === undefined ? 1 : 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`[savepoint] unknown command "${name}".\n\n${help()}\n`);
    return 2;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof SavepointError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    throw err;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
