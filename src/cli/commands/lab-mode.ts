import type { CommandModule } from 'yargs';
import { BACKENDS, BackendChoice, ENCAPSULATIONS, Encapsulation, MODES, Mode } from '../../model/types';
import { LAB_PROTOCOLS, LabProtocol, labModeTitle } from '../../lab/lb-config';
import { UsageError } from '../errors';
import { requireRoot, withLabName } from '../lab-options';
import { findLab } from '../../lab/providers';
import { HA_KINDS, HaKind } from '../../lab/ha';

interface Args {
  name: string;
  mode: Mode;
  backend: BackendChoice;
  encapsulation: Encapsulation;
  protocol: LabProtocol;
  cache: boolean;
  ha?: HaKind;
  sync: boolean;
  advertInterval?: number;
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
      })
      .option('protocol', {
        choices: LAB_PROTOCOLS,
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- yargs takes the option's type from its default: a plain string without it
        default: 'tcp' as LabProtocol,
        describe:
          'service type: tcp (L4, the kernel forwards) or http/https (L7: HAProxy on the balancer connects to a real server once the request arrived)',
      })
      .option('cache', {
        type: 'boolean',
        default: false,
        describe: 'L7 reverse proxy (fullnat with --protocol http or https): a static cache on the balancer',
      })
      .option('ha', {
        choices: HA_KINDS,
        describe:
          'a lab of two balancers (lab up --balancers 2): ecmp (dsr), slbctl run on each announces the VIP over BGP (BIRD) and the router spreads flows over both; vrrp (fullnat, transparent), keepalived gives the VIP and a floating address to one, conntrackd (nftables) or the IPVS sync daemons (IPVS, as in the uml lab) copy its connections to the other',
      })
      .option('advert-interval', {
        type: 'number',
        describe:
          "--ha vrrp: the pair's VRRP advert interval in ms (default 100; the user-mode-linux lab uses 1000: its one slow CPU starves keepalived of 100 ms adverts, and the standby takes over from a live master)",
      })
      .option('sync', {
        type: 'boolean',
        default: true,
        describe:
          '--ha vrrp: copy connection state to the standby (conntrackd, or the IPVS sync daemons on IPVS); --no-sync shows what a failover loses without it',
      }),
  handler: async (args) => {
    requireRoot('lab mode');
    const lab = await findLab(args.name);
    const say = (line: string) => process.stdout.write(`${line}\n`);
    if (args.protocol !== 'tcp' && args.mode === 'dsr')
      throw new UsageError(
        `mode dsr is L4 only: the balancer never sees the reply, so it cannot proxy ${args.protocol}; use fullnat or transparent`,
      );
    if (args.cache && (args.protocol === 'tcp' || args.mode !== 'fullnat'))
      throw new UsageError('--cache is for the L7 reverse proxy: mode fullnat with --protocol http or https');
    say(`lab "${args.name}": mode ${args.mode} (${labModeTitle(args.mode, args)})`);
    await lab.mode(
      args.mode,
      {
        backend: args.backend,
        encapsulation: args.encapsulation,
        protocol: args.protocol,
        cache: args.cache,
        ...(args.ha ? { ha: args.ha } : {}),
        ...(args.sync ? {} : { sync: false }),
        ...(args.advertInterval !== undefined ? { advertIntervalMs: args.advertInterval } : {}),
      },
      say,
    );
    say(`next: slbctl lab verify --name ${args.name}${args.ha ? ` (then: slbctl lab fail lb --name ${args.name})` : ''}`);
  },
};
