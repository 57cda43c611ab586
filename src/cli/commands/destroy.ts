import type { CommandModule } from 'yargs';
import { Backend, closeSession, executePlan, planDestroy, sessionIfAvailable } from '../../engine/engine';
import { formatPlan } from '../../plan/format';
import { BACKENDS, BackendChoice } from '../../model/types';

interface Args { 'dry-run': boolean; backend: BackendChoice }

export const destroyCommand: CommandModule<object, Args> = {
  command: 'destroy',
  describe: 'Remove everything slbctl programmed (its nft tables, its IPVS services, the VIPs it added), nothing else',
  builder: (y) => y
    .option('dry-run', { type: 'boolean', default: false, describe: 'print what would be removed' })
    .option('backend', { choices: BACKENDS, default: 'auto' as BackendChoice, describe: 'which backend to clean (auto: every one this host has)' }),
  handler: async (args) => {
    const backends: Backend[] = args.backend === 'auto' ? ['nft', 'ipvs'] : [args.backend];
    let removed = 0;
    for (const backend of backends) {
      const k = await sessionIfAvailable(backend);
      if (!k) continue;
      try {
        const plan = await planDestroy(k);
        if (plan.ops.length === 0) continue;
        removed += plan.ops.length;
        process.stdout.write(`backend: ${backend}\n${formatPlan(plan.ops)}\n`);
        if (!args['dry-run']) await executePlan(k, plan);
      } finally {
        closeSession(k);
      }
    }
    process.stdout.write(removed === 0 ? 'nothing to destroy\n' : args['dry-run'] ? '' : 'destroyed\n');
  },
};
