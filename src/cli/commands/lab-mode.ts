import type { CommandModule } from 'yargs';
import { BACKENDS, BackendChoice, ENCAPSULATIONS, Encapsulation, MODES, Mode } from '../../model/types';
import { MODE_TITLES } from '../../lab/lb-config';
import { requireRoot, withLabName } from '../lab-options';
import { findLab } from '../../lab/providers';

interface Args {
  name: string;
  mode: Mode;
  backend: BackendChoice;
  encapsulation: Encapsulation;
}

export const labModeCommand: CommandModule<object, Args> = {
  command: 'mode <mode>',
  describe: "Configure the real servers for a mode and apply the balancer's config with slbctl inside the LB namespace",
  builder: (y) =>
    withLabName(y)
      .positional('mode', { choices: MODES, demandOption: true, describe: 'forwarding mode' })
      .option('backend', {
        choices: BACKENDS,
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- yargs takes the option's type from its default: a plain string without it
        default: 'auto' as BackendChoice,
        describe:
          'kernel backend on the balancer; auto: the one its kernel has (IPVS in user-mode-linux and on the VMs, nftables in namespaces of a kernel without IPVS)',
      })
      .option('encapsulation', {
        choices: ENCAPSULATIONS,
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- yargs takes the option's type from its default: a plain string without it
        default: 'none' as Encapsulation,
        describe: 'dsr: ipip tunnels to the real servers (IPVS backend, kernel with ipip)',
      }),
  handler: async (args) => {
    requireRoot('lab mode');
    const lab = await findLab(args.name);
    const say = (line: string) => process.stdout.write(`${line}\n`);
    say(`lab "${args.name}": mode ${args.mode} (${MODE_TITLES[args.mode]})`);
    await lab.mode(args.mode, args.backend, args.encapsulation, say);
    say(`next: slbctl lab verify --name ${args.name}`);
  },
};
