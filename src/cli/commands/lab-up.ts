import type { CommandModule } from 'yargs';
import { labUp, nsName } from '../../lab/netns';
import { LAB_HOSTS, REFERENCE_TOPOLOGY } from '../../lab/topology';
import { requireRoot, withLabName } from '../lab-options';
import { forwardToUml, startUmlLab, stopUmlLab, umlLab } from '../../uml/lab';
import { LabError } from '../../lab/errors';
import { startVagrantLab, vagrantLab } from '../../vagrant/lab';
import { defaultVagrantBox } from '../../vagrant/box';

interface Args { name: string; provider: string; box?: string }

export const labUpCommand: CommandModule<object, Args> = {
  command: 'up',
  describe: 'Build the reference topology in network namespaces and start the real servers\' HTTP servers',
  builder: (y) => withLabName(y).option('provider', { choices: ['netns', 'uml', 'vagrant'], default: 'netns', describe: 'netns: namespaces on this kernel; uml: namespaces inside a user-mode-linux kernel with IPVS that keeps running until lab down; vagrant: four VMs (vagrant up, libvirt), IPVS by default' })
    .option('box', { type: 'string', describe: 'vagrant: the box (default $SLBCTL_VAGRANT_BOX, else slbctl/debian12 when scripts/vagrant-box added it, else debian/bookworm64)' }),
  handler: async (args) => {
    requireRoot('lab up');
    const started = Date.now();
    if (umlLab(args.name)) throw new LabError(`lab "${args.name}" already runs on user-mode-linux; run \`slbctl lab down --name ${args.name}\` first`);
    if (vagrantLab(args.name)) throw new LabError(`lab "${args.name}" already runs on Vagrant VMs; run \`slbctl lab down --name ${args.name}\` first`);
    if (args.provider === 'vagrant') {
      const record = await startVagrantLab(args.name, args.box ?? (await defaultVagrantBox()), (line) => process.stdout.write(`  ${line}\n`));
      process.stdout.write(`lab "${args.name}" is up on Vagrant VMs in ${((Date.now() - started) / 1000).toFixed(0)} s (box ${record.box}; client VM = client + router)\nnext: slbctl lab mode fullnat|transparent|dsr --name ${args.name}\n`);
      return;
    }
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
