import type { CommandModule } from 'yargs';
import { labDown } from '../../lab/netns';
import { forwardToUml, stopUmlLab, umlLab } from '../../uml/lab';
import { requireRoot, withLabName } from '../lab-options';
import { orphanedVagrantLab, stopVagrantLab, vagrantLab } from '../../vagrant/lab';

interface Args { name: string }

export const labDownCommand: CommandModule<object, Args> = {
  command: 'down',
  describe: 'Remove everything the lab made (also after a crash half-way), and stop its user-mode-linux kernel if it has one',
  builder: (y) => withLabName(y),
  handler: async (args) => {
    requireRoot('lab down');
    const vagrant = vagrantLab(args.name) ?? (await orphanedVagrantLab(args.name));
    if (vagrant) {
      await stopVagrantLab(vagrant, (line) => process.stdout.write(`lab "${args.name}": ${line}\n`));
      return;
    }
    const uml = umlLab(args.name);
    if (uml) {
      const inside = await forwardToUml(uml, ['lab', 'down', '--name', args.name], 60_000).catch((e: Error) => ({ code: 1, output: `${e.message}\n` }));
      process.stdout.write(inside.output);
      await stopUmlLab(uml);
      process.stdout.write(`lab "${args.name}": user-mode-linux kernel (pid ${uml.pid}) stopped\n`);
      return;
    }
    const { removed } = await labDown(args.name);
    process.stdout.write(removed.length ? `lab "${args.name}" removed: ${removed.join(', ')}\n` : `lab "${args.name}": nothing to remove\n`);
  },
};
