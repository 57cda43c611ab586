import type { CommandModule } from 'yargs';
import { requireRoot, withLabName } from '../lab-options';
import { findLab } from '../../lab/providers';
import { LabError } from '../../lab/errors';
import { BALANCERS, BalancerName } from '../../lab/topology';

interface Args {
  name: string;
  balancer: BalancerName;
}

function balancerCommand(verb: 'fail' | 'recover', describe: string): CommandModule<object, Args> {
  return {
    command: `${verb} <balancer>`,
    describe,
    builder: (y) => withLabName(y).positional('balancer', { choices: BALANCERS, demandOption: true, describe: 'which balancer' }),
    handler: async (args) => {
      requireRoot(`lab ${verb}`);
      const lab = await findLab(args.name);
      const act = verb === 'fail' ? lab.fail?.bind(lab) : lab.recover?.bind(lab);
      if (!act) throw new LabError(`the ${lab.provider} lab has one balancer; \`lab ${verb}\` is for a lab made with --balancers 2`);
      const say = (line: string) => process.stdout.write(`${line}\n`);
      say(`lab "${args.name}": ${verb} ${args.balancer}`);
      await act(args.balancer, say);
      say(verb === 'fail' ? `next: slbctl lab recover ${args.balancer} --name ${args.name}` : 'both balancers serve');
    },
  };
}

export const labFailCommand = balancerCommand(
  'fail',
  "Make one of two balancers fail: its server-side link goes down and its controller is killed (ecmp: the router's BFD notices in about 0.3 s; vrrp: the standby takes the VIP after three missed adverts)",
);
export const labRecoverCommand = balancerCommand(
  'recover',
  'Bring a failed balancer back: link up, its controller started again; waits until the router sends it flows again (ecmp) or it is the standby (vrrp)',
);
