import type { CommandModule } from 'yargs';
import { MODES, Mode } from '../../model/types';
import { applyLabMode } from '../../lab/mode';
import { MODE_TITLES } from '../../lab/lb-config';
import { forwardIfUml, requireRoot, withLabName } from '../lab-options';
import { vagrantLab } from '../../vagrant/lab';
import { applyVagrantMode } from '../../vagrant/mode';

interface Args { name: string; mode: Mode; backend?: 'nft' | 'ipvs'; encapsulation: 'none' | 'ipip' }

export const labModeCommand: CommandModule<object, Args> = {
  command: 'mode <mode>',
  describe: 'Configure the real servers for a mode and apply the balancer\'s config with slbctl inside the LB namespace',
  builder: (y) => withLabName(y)
    .positional('mode', { choices: MODES, demandOption: true, describe: 'forwarding mode' })
    .option('backend', { choices: ['nft', 'ipvs'] as const, describe: 'kernel backend on the balancer (default nft; ipvs on the vagrant provider, whose kernel has IPVS)' })
    .option('encapsulation', { choices: ['none', 'ipip'] as const, default: 'none' as const, describe: 'dsr: ipip tunnels to the real servers (IPVS backend, kernel with ipip)' }),
  handler: async (args) => {
    requireRoot('lab mode');
    if (await forwardIfUml(args.name)) return;
    process.stdout.write(`lab "${args.name}": mode ${args.mode} (${MODE_TITLES[args.mode]})\n`);
    const vagrant = vagrantLab(args.name);
    if (vagrant) {
      await applyVagrantMode(vagrant, args.mode, args.backend ?? 'ipvs', args.encapsulation, (l) => process.stdout.write(`${l}\n`));
      process.stdout.write(`next: slbctl lab verify --name ${args.name}\n`);
      return;
    }
    await applyLabMode(args.name, args.mode, (l) => process.stdout.write(`${l}\n`), args.backend ?? 'nft', args.encapsulation);
    process.stdout.write(`next: slbctl lab verify --name ${args.name}\n`);
  },
};
