// slbctl command line: one command per file; this file only wires them up.
import yargs from 'yargs';
import { applyCommand } from './commands/apply';
import { destroyCommand } from './commands/destroy';
import { planCommand } from './commands/plan';
import { statusCommand } from './commands/status';
import { validateCommand } from './commands/validate';
import { labCommand } from './commands/lab';
import { demoCommand } from './commands/demo';
import { runCommand } from './commands/run';
import { drainCommand, undrainCommand } from './commands/drain';
import { AnyCommand, anyCommand } from './command-group';
import { UsageError, report } from './errors';

/** Every top-level command; groups (lab) carry their subcommands. */
export const COMMANDS: readonly AnyCommand[] = [
  anyCommand(validateCommand),
  anyCommand(planCommand),
  anyCommand(applyCommand),
  anyCommand(statusCommand),
  anyCommand(destroyCommand),
  anyCommand(runCommand),
  anyCommand(drainCommand),
  anyCommand(undrainCommand),
  anyCommand(labCommand),
  anyCommand(demoCommand),
];

/** What yargs passes a fail callback as its third argument: its usage object, not the Argv the types claim. */
interface YargsUsage {
  help?: () => unknown;
}

/** A number option given something that is not a number arrives as NaN: refuse it like any other bad value. */
function numbersAreNumbers(argv: Record<string, unknown>): true {
  // An option is there under its name, its aliases and its camelCase form: name it by the longest dashed one.
  const [key] = Object.keys(argv)
    .filter((k) => typeof argv[k] === 'number' && Number.isNaN(argv[k]))
    .sort((a, b) => Number(b.includes('-')) - Number(a.includes('-')) || b.length - a.length);
  if (key !== undefined) throw new Error(`--${key} must be a number`);
  return true;
}

export async function main(argv: string[]): Promise<void> {
  const parser = yargs(argv)
    .scriptName('slbctl')
    .usage(
      '$0 <command> [options]\n\nProgram the Linux kernel to serve a VIP from real servers in full-NAT, transparent or direct-server-return mode, and prove the mode from packet captures.',
    );
  for (const c of COMMANDS) parser.command(c);
  parser
    .demandCommand(1, 'name a command; see slbctl --help')
    .strict()
    .recommendCommands()
    .check(numbersAreNumbers)
    .help()
    .alias('h', 'help')
    .version()
    .epilogue(
      'Exit codes: 0 ok; 1 verification failed; 2 bad config or usage; 3 not root / nft missing; 4 kernel refused a change (nothing left half-applied); 5 lab operation failed.',
    )
    .fail((msg: string | null, err: Error | undefined, usage: YargsUsage) => {
      // A handler's own failure arrives without a message: it is the handler's
      // error, reported below like any other.
      if (msg === null || msg === undefined) throw err ?? new Error('the command failed');
      // Anything else is the command line's fault. Throwing here is what stops
      // yargs: a fail callback that returns lets it run the handler anyway.
      const help = typeof usage.help === 'function' ? usage.help() : undefined;
      if (typeof help === 'string' && help) process.stderr.write(`${help}\n\n`);
      throw new UsageError(msg);
    });
  try {
    await parser.parseAsync();
  } catch (e) {
    process.exitCode = report(e);
  }
}

if (require.main === module) void main(process.argv.slice(2));
