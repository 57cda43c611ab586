import type { CommandModule } from 'yargs';
import { loadConfig, withConfigOptions } from '../config-file';
import { withSession } from '../kernel-session';
import { planConfig } from '../../engine/engine';
import { formatPlan } from '../../plan/format';
import { renderPlan } from '../../kernel/nft/render';
import { BackendChoice } from '../../model/types';

interface Args { file: string; backend?: BackendChoice; json: boolean; 'detailed-exitcode': boolean; nft: boolean }

export const planCommand: CommandModule<object, Args> = {
  command: 'plan',
  describe: 'Print the exact kernel operations `apply` would perform, changing nothing',
  builder: (y) => withConfigOptions(y)
    .option('nft', { type: 'boolean', default: true, describe: 'also print the nftables transaction (--no-nft to hide)' })
    .option('json', { type: 'boolean', default: false, describe: 'print the plan as JSON' })
    .option('detailed-exitcode', { type: 'boolean', default: false, describe: 'exit 0 when there are no changes, 2 when there are' }),
  handler: async (args) => {
    const config = loadConfig(args.file);
    const { backend, plan } = await withSession(args.backend ?? config.backend, async (k) => ({ backend: k.backend, plan: await planConfig(k, config) }));
    const script = backend === 'nft' ? renderPlan(plan) : '';
    if (args.json) {
      process.stdout.write(`${JSON.stringify({ backend, ops: plan.ops, nft: script }, null, 2)}\n`);
    } else {
      process.stdout.write(`backend: ${backend}\n${formatPlan(plan.ops)}\n`);
      if (args.nft && script) process.stdout.write(`\nnftables transaction:\n${script.replace(/^/gm, '  ')}`);
    }
    if (args['detailed-exitcode'] && plan.ops.length > 0) process.exitCode = 2;
  },
};
