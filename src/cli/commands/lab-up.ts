import type { CommandModule } from 'yargs';
import { labUp, nsName } from '../../lab/netns';
import { LAB_HOSTS, REFERENCE_TOPOLOGY } from '../../lab/topology';
import { requireRoot, withLabName } from '../lab-options';

interface Args { name: string; provider: string }

export const labUpCommand: CommandModule<object, Args> = {
  command: 'up',
  describe: 'Build the reference topology in network namespaces and start the real servers\' HTTP servers',
  builder: (y) => withLabName(y).option('provider', { choices: ['netns'], default: 'netns', describe: 'where the lab runs' }),
  handler: async (args) => {
    requireRoot('lab up');
    const started = Date.now();
    await labUp(args.name, REFERENCE_TOPOLOGY, (line) => process.stdout.write(`  ${line}\n`));
    const hosts = LAB_HOSTS.map((h) => {
      const host = REFERENCE_TOPOLOGY.hosts.find((x) => x.name === h);
      return `  ${nsName(args.name, h).padEnd(16)} ${host?.interfaces.map((i) => `${i.name} ${i.cidr}`).join(', ')}`;
    });
    process.stdout.write(`lab "${args.name}" is up in ${((Date.now() - started) / 1000).toFixed(1)} s:\n${hosts.join('\n')}\nnext: slbctl lab mode fullnat|transparent|dsr --name ${args.name}\n`);
  },
};
