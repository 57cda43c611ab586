import type { CommandModule } from 'yargs';
import { labExec } from '../../lab/netns';
import { LAB_HOSTS, LabHostName } from '../../lab/topology';
import { requireRoot, withLabName } from '../lab-options';

interface Args { name: string; host: string; cmd: string[] }

export const labExecCommand: CommandModule<object, Args> = {
  command: 'exec <host> <cmd..>',
  describe: 'Run a command on one lab host (put it after --); its exit code is passed through',
  builder: (y) => withLabName(y)
    .positional('host', { choices: LAB_HOSTS, describe: 'lab host', type: 'string', demandOption: true })
    .positional('cmd', { type: 'string', array: true, demandOption: true, describe: 'command and arguments' })
    .example('$0 lab exec lb -- nft list ruleset', 'show the balancer\'s ruleset'),
  handler: async (args) => {
    requireRoot('lab exec');
    const r = await labExec(args.name, args.host as LabHostName, args.cmd.map(String));
    process.stdout.write(r.stdout);
    process.stderr.write(r.stderr);
    process.exitCode = r.code;
  },
};
