import type { CommandModule } from 'yargs';
import { labUp, nsName } from '../../lab/netns';
import { LAB_HOSTS, REFERENCE_TOPOLOGY } from '../../lab/topology';
import { requireRoot, withLabName } from '../lab-options';
import { forwardToUml, startUmlLab, stopUmlLab, umlLab } from '../../uml/lab';
import { LabError } from '../../lab/errors';

interface Args { name: string; provider: string }

export const labUpCommand: CommandModule<object, Args> = {
  command: 'up',
  describe: 'Build the reference topology in network namespaces and start the real servers\' HTTP servers',
  builder: (y) => withLabName(y).option('provider', { choices: ['netns', 'uml'], default: 'netns', describe: 'netns: namespaces on this kernel; uml: namespaces inside a user-mode-linux kernel with IPVS that keeps running until lab down' }),
  handler: async (args) => {
    requireRoot('lab up');
    const started = Date.now();
    if (umlLab(args.name)) throw new LabError(`lab "${args.name}" already runs on user-mode-linux; run \`slbctl lab down --name ${args.name}\` first`);
    if (args.provider === 'uml') {
      const record = await startUmlLab(args.name, (line) => process.stdout.write(`  ${line}\n`));
      const inside = await forwardToUml(record, ['lab', 'up', '--name', args.name]);
      process.stdout.write(inside.output);
      if (inside.code !== 0) {
        await stopUmlLab(record);
        throw new LabError(`lab up inside the user-mode-linux kernel failed (exit ${inside.code}); the kernel was stopped`);
      }
      process.stdout.write(`(on user-mode-linux, ${((Date.now() - started) / 1000).toFixed(1)} s in all; IPVS available: slbctl lab mode MODE --backend ipvs --name ${args.name})\n`);
      return;
    }
    await labUp(args.name, REFERENCE_TOPOLOGY, (line) => process.stdout.write(`  ${line}\n`));
    const hosts = LAB_HOSTS.map((h) => {
      const host = REFERENCE_TOPOLOGY.hosts.find((x) => x.name === h);
      return `  ${nsName(args.name, h).padEnd(16)} ${host?.interfaces.map((i) => `${i.name} ${i.cidr}`).join(', ')}`;
    });
    process.stdout.write(`lab "${args.name}" is up in ${((Date.now() - started) / 1000).toFixed(1)} s:\n${hosts.join('\n')}\nnext: slbctl lab mode fullnat|transparent|dsr --name ${args.name}\n`);
  },
};
