// slbctl command line: one command per file; this file only wires them up.
import yargs from 'yargs';
import { AnyCommand, anyCommand } from './command-group';
import { UsageError, report } from './errors';

/**
 * Each top-level command's own module, by name. `slbctl plan` loads the
 * planner and the kernel clients it needs, not the lab, the verifier, the
 * report or the controller: loading every module was most of a short
 * command's time (a 10,000-service `slbctl plan` with nothing to do spent
 * 1.3 s of 1.7 s loading modules).
 */
const ONE_COMMAND: ReadonlyMap<string, () => Promise<AnyCommand>> = new Map([
  ['validate', async () => anyCommand((await import('./commands/validate')).validateCommand)],
  ['plan', async () => anyCommand((await import('./commands/plan')).planCommand)],
  ['apply', async () => anyCommand((await import('./commands/apply')).applyCommand)],
  ['status', async () => anyCommand((await import('./commands/status')).statusCommand)],
  ['destroy', async () => anyCommand((await import('./commands/destroy')).destroyCommand)],
  ['run', async () => anyCommand((await import('./commands/run')).runCommand)],
  ['drain', async () => anyCommand((await import('./commands/drain')).drainCommand)],
  ['undrain', async () => anyCommand((await import('./commands/drain')).undrainCommand)],
  ['lab', async () => anyCommand((await import('./commands/lab')).labCommand)],
  ['demo', async () => anyCommand((await import('./commands/demo')).demoCommand)],
]);

/** The names `ONE_COMMAND` knows (a test checks them against the whole list). */
export const commandNames = (): string[] => [...ONE_COMMAND.keys()];

/** What yargs is given: the named command alone, or every command when none of slbctl's is named (help, a typo). */
export async function commandsFor(argv: readonly string[]): Promise<readonly AnyCommand[]> {
  const first = argv.find((a) => !a.startsWith('-'));
  const load = first === undefined ? undefined : ONE_COMMAND.get(first);
  return load ? [await load()] : (await import('./commands/index')).COMMANDS;
}

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
  for (const c of await commandsFor(argv)) parser.command(c);
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
