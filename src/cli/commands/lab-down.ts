import type { CommandModule } from 'yargs';
import { requireRoot, withLabName } from '../lab-options';
import { findLab } from '../../lab/providers';

interface Args {
  name: string;
}

export const labDownCommand: CommandModule<object, Args> = {
  command: 'down',
  describe: 'Remove everything the lab made (also after a crash half-way, or when its record was lost), whichever provider runs it',
  builder: (y) => withLabName(y),
  handler: async (args) => {
    requireRoot('lab down');
    const lab = await findLab(args.name, { leftovers: true });
    await lab.down((line) => process.stdout.write(`${line}\n`));
  },
};
