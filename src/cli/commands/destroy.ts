import type { CommandModule } from 'yargs';
import { Backend, closeSession, executePlan, planDestroy, planRestoreSysctls, sessionIfAvailable } from '../../engine/engine';
import { formatPlan } from '../../plan/format';
import { BACKENDS, BackendChoice } from '../../model/types';
import { BACKEND_NAMES } from '../../backends/names';
import { Plan } from '../../plan/types';
import { asWriter, withWriterOptions } from '../writer';
import { removeRecord } from '../../records/netns';

interface Args {
  'dry-run': boolean;
  backend: BackendChoice;
  'keep-sysctls': boolean;
  wait: string;
  force: boolean;
}

export const destroyCommand: CommandModule<object, Args> = {
  command: 'destroy',
  describe: 'Remove everything slbctl programmed (its nft tables, its IPVS services and iptables chain, the VIPs it added), nothing else',
  builder: (y) =>
    withWriterOptions(y)
      .option('dry-run', { type: 'boolean', default: false, describe: 'print what would be removed' })
      .option('backend', {
        choices: BACKENDS,
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- yargs takes the option's type from its default: a plain string without it
        default: 'auto' as BackendChoice,
        describe: 'which backend to clean (auto: every one this host has)',
      })
      .option('keep-sysctls', {
        type: 'boolean',
        default: false,
        describe:
          'leave the sysctls slbctl changed (ip_forward …) as they are; by default they are put back when they still hold the value slbctl set',
      }),
  handler: async (args) => {
    const backends: Backend[] = args.backend === 'auto' ? [...BACKEND_NAMES] : [args.backend];
    let removed = 0;
    const show = (backend: Backend, plan: Plan) => {
      removed += plan.ops.length;
      process.stdout.write(`backend: ${backend}\n${formatPlan(plan.ops)}\n`);
    };
    const destroy = async () => {
      let last: Backend | undefined;
      for (const backend of backends) {
        const k = await sessionIfAvailable(backend);
        if (!k) continue;
        last = backend;
        try {
          const plan = await planDestroy(k);
          if (plan.ops.length > 0) show(backend, plan);
          // With no operation too: it settles the ownership record an apply that was killed left.
          if (!args['dry-run']) await executePlan(k, plan);
        } finally {
          closeSession(k);
        }
      }
      if (args['keep-sysctls'] || args['dry-run'] || !last) return;
      const k = await sessionIfAvailable(last);
      if (!k) return;
      try {
        const restore = await planRestoreSysctls(k);
        if (restore) {
          if (restore.ops.length > 0) show(last, restore);
          // Also with no op: it ends the record of sysctls someone else changed since.
          await executePlan(k, restore);
        }
      } finally {
        closeSession(k);
      }
      // Nothing of slbctl's is left: its drains here describe nothing any more.
      if (backends.length === BACKEND_NAMES.length) removeRecord('drains');
    };
    if (args['dry-run']) await destroy();
    else await asWriter(args, 'slbctl destroy', destroy);
    process.stdout.write(removed === 0 ? 'nothing to destroy\n' : args['dry-run'] ? '' : 'destroyed\n');
  },
};
