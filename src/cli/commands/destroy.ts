import type { CommandModule } from 'yargs';
import { withRtnl } from '../kernel-session';
import { executePlan, planDestroy, preflight } from '../../engine/engine';
import { formatPlan } from '../../plan/format';

interface Args { 'dry-run': boolean }

export const destroyCommand: CommandModule<object, Args> = {
  command: 'destroy',
  describe: 'Remove everything slbctl programmed (its tables and the VIPs it added), nothing else',
  builder: (y) => y.option('dry-run', { type: 'boolean', default: false, describe: 'print what would be removed' }),
  handler: async (args) => {
    preflight('nft');
    await withRtnl(async (rtnl) => {
      const plan = await planDestroy(rtnl);
      if (plan.ops.length === 0) {
        process.stdout.write('nothing to destroy\n');
        return;
      }
      process.stdout.write(`${formatPlan(plan.ops)}\n`);
      if (args['dry-run']) return;
      await executePlan(rtnl, plan);
      process.stdout.write('destroyed\n');
    });
  },
};
