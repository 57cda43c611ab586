import type { CommandModule } from 'yargs';
import { labDown } from '../../lab/netns';
import { requireRoot, withLabName } from '../lab-options';

interface Args { name: string }

export const labDownCommand: CommandModule<object, Args> = {
  command: 'down',
  describe: 'Remove everything the lab made (also after a crash half-way)',
  builder: (y) => withLabName(y),
  handler: async (args) => {
    requireRoot('lab down');
    const { removed } = await labDown(args.name);
    process.stdout.write(removed.length ? `lab "${args.name}" removed: ${removed.join(', ')}\n` : `lab "${args.name}": nothing to remove\n`);
  },
};
