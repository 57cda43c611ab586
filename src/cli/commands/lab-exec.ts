import type { CommandModule } from 'yargs';
import { LabHostName, labHosts } from '../../lab/topology';
import { requireRoot, withLabName } from '../lab-options';
import { findLab } from '../../lab/providers';

interface Args {
  name: string;
  host: string;
  cmd?: string[];
  '--'?: string[];
}

function commandOf(args: Pick<Args, 'cmd' | '--'>): string[] {
  return [...(args.cmd ?? []), ...(args['--'] ?? [])].map(String);
}

export const labExecCommand: CommandModule<object, Args> = {
  command: 'exec <host> [cmd..]',
  describe: 'Run a command on one lab host (put it after --); its exit code is passed through',
  builder: (y) =>
    withLabName(y)
      .positional('host', {
        choices: labHosts(2),
        describe: 'lab host (lb2: a lab made with --balancers 2)',
        type: 'string',
        demandOption: true,
      })
      .positional('cmd', { type: 'string', array: true, describe: "command and arguments (after --, so its options are not slbctl's)" })
      // Everything after -- is the command's, options included.
      .parserConfiguration({ 'populate--': true })
      .check((a) => {
        if (commandOf(a).length === 0)
          throw new Error('lab exec: name the command to run, after --, e.g. `slbctl lab exec lb -- nft list ruleset`');
        return true;
      })
      .example('$0 lab exec lb -- nft list ruleset', "show the balancer's ruleset"),
  handler: async (args) => {
    requireRoot('lab exec');
    const lab = await findLab(args.name);
    const r = await lab.exec(args.host as LabHostName, commandOf(args));
    process.stdout.write(r.stdout);
    process.stderr.write(r.stderr);
    process.exitCode = r.code;
  },
};
