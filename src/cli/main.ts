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
import { EXIT, report } from './errors';

export async function main(argv: string[]): Promise<void> {
  let failed = false;
  const parser = yargs(argv)
    .scriptName('slbctl')
    .usage('$0 <command> [options]\n\nProgram the Linux kernel to serve a VIP from real servers in full-NAT, transparent or direct-server-return mode, and prove the mode from packet captures.')
    .command(validateCommand)
    .command(planCommand)
    .command(applyCommand)
    .command(statusCommand)
    .command(destroyCommand)
    .command(runCommand)
    .command(drainCommand)
    .command(undrainCommand)
    .command(labCommand)
    .command(demoCommand)
    .demandCommand(1, 'name a command; see slbctl --help')
    .strict()
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version()
    .epilogue('Exit codes: 0 ok; 1 verification failed; 2 bad config or usage; 3 not root / nft missing; 4 kernel refused a change (nothing left half-applied); 5 lab operation failed.')
    .fail((msg, err, y) => {
      failed = true;
      if (err) {
        process.exitCode = report(err);
        return;
      }
      void y;
      process.stderr.write(`slbctl: ${msg}\nRun with --help for usage.\n`);
      process.exitCode = EXIT.config;
    });
  try {
    await parser.parseAsync();
  } catch (e) {
    if (!failed) process.exitCode = report(e);
  }
}

if (require.main === module) void main(process.argv.slice(2));
