import type { CommandModule } from 'yargs';
import { loadConfig, withConfigOptions } from '../config-file';
import { withSession } from '../kernel-session';
import { asWriter, withWriterOptions } from '../writer';
import { executePlan, planConfig } from '../../engine/engine';
import { formatPlan } from '../../plan/format';
import { readConfigText } from '../../engine/plan-memo';
import { configFromText } from '../../model/load';
import { BackendChoice } from '../../model/types';

interface Args {
  file: string;
  backend?: BackendChoice;
  'dry-run': boolean;
  quiet: boolean;
  wait: string;
  force: boolean;
}

export const applyCommand: CommandModule<object, Args> = {
  command: 'apply',
  describe: 'Program the kernel to match the config (nftables: one transaction; IPVS: rolled back on failure)',
  builder: (y) =>
    withWriterOptions(withConfigOptions(y))
      .option('dry-run', { type: 'boolean', default: false, describe: 'print the plan and change nothing (same as `plan`)' })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'print only the summary line' }),
  handler: async (args) => {
    const read = readConfigText(args.file);
    const config = read ? configFromText(args.file, read.text) : loadConfig(args.file);
    await withSession(args.backend ?? config.backend, async (k) => {
      const apply = async () => {
        const plan = await planConfig(k, config, { fromRecord: true, ...(read ? { bytes: read.bytes } : {}) });
        if (plan.ops.length === 0) {
          // No change, yet the ownership record of an apply that was killed is settled (see executePlan).
          if (!args['dry-run']) await executePlan(k, plan);
          process.stdout.write('no changes\n');
          return;
        }
        if (!args.quiet) process.stdout.write(`backend: ${k.backend}\n${formatPlan(plan.ops)}\n`);
        if (args['dry-run']) return;
        await executePlan(k, plan);
        process.stdout.write(`applied ${plan.ops.length} operation${plan.ops.length === 1 ? '' : 's'}\n`);
      };
      // A dry run changes nothing: it needs no lock and no leave from a controller.
      if (args['dry-run']) await apply();
      else await asWriter(args, 'slbctl apply', apply);
    });
  },
};
