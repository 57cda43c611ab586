import type { CommandModule } from 'yargs';
import { requireRoot, withLabName } from '../lab-options';
import { LabError } from '../../lab/errors';
import { LAB_PROVIDERS, LAB_PROVIDER_NAMES, LabProviderName, recordedLab } from '../../lab/providers';

interface Args {
  name: string;
  provider: LabProviderName;
  box?: string;
  balancers: number;
}

export const labUpCommand: CommandModule<object, Args> = {
  command: 'up',
  describe: "Build the reference topology (client, router, LB, two real servers) and start the real servers' HTTP servers",
  builder: (y) =>
    withLabName(y)
      .option('provider', {
        choices: LAB_PROVIDER_NAMES,
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- yargs takes the option's type from its default: a plain string without it
        default: 'netns' as LabProviderName,
        describe: LAB_PROVIDER_NAMES.map((n) => `${n}: ${LAB_PROVIDERS[n].describe}`).join('; '),
      })
      .option('balancers', {
        type: 'number',
        default: 1,
        describe:
          '1, or 2 for a second balancer lb2 (172.16.75.86) beside lb (netns and uml: NAME-lb2; vagrant: a fifth VM), for `lab mode dsr --ha ecmp` or (netns and uml) `lab mode fullnat|transparent --ha vrrp`',
      })
      .check((a) => {
        if (a.balancers !== 1 && a.balancers !== 2) throw new Error('--balancers must be 1 or 2');
        return true;
      })
      .option('box', {
        type: 'string',
        describe:
          'vagrant: the box (default $SLBCTL_VAGRANT_BOX, else slbctl/debian12 when scripts/vagrant-box added it, else debian/bookworm64)',
      }),
  handler: async (args) => {
    requireRoot('lab up');
    const running = await recordedLab(args.name);
    if (running)
      throw new LabError(
        `lab "${args.name}" already runs on the ${running.provider} provider; run \`slbctl lab down --name ${args.name}\` first`,
      );
    const summary = await LAB_PROVIDERS[args.provider].up(
      args.name,
      { ...(args.box ? { box: args.box } : {}), balancers: args.balancers },
      (line) => process.stdout.write(`${line}\n`),
    );
    process.stdout.write(`${summary}\n`);
  },
};
