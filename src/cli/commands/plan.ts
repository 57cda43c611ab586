import type { CommandModule } from 'yargs';
import { loadConfig, withConfigOptions } from '../config-file';
import { withSession } from '../kernel-session';
import { planConfig, planUnchangedFile } from '../../engine/engine';
import { choiceOfFile, readConfigText } from '../../engine/plan-memo';
import { configFromText } from '../../model/load';
import { formatPlan } from '../../plan/format';
import { BackendChoice } from '../../model/types';

interface Args {
  file: string;
  backend?: BackendChoice;
  json: boolean;
  'detailed-exitcode': boolean;
  script: boolean;
}

export const planCommand: CommandModule<object, Args> = {
  command: 'plan',
  describe: 'Print the exact kernel operations `apply` would perform, changing nothing',
  builder: (y) =>
    withConfigOptions(y)
      .option('script', {
        alias: 'nft',
        type: 'boolean',
        default: true,
        describe: "also print the backend's own transaction, e.g. the nftables script (--no-script or --no-nft to hide)",
      })
      .option('json', { type: 'boolean', default: false, describe: 'print the plan as JSON' })
      .option('detailed-exitcode', { type: 'boolean', default: false, describe: 'exit 0 when there are no changes, 2 when there are' }),
  handler: async (args) => {
    // The same bytes as at the last plan with nothing to do, on an unchanged host: no change, without parsing the file.
    const read = readConfigText(args.file);
    const choice = read && choiceOfFile(read.bytes);
    const unchanged =
      read && choice
        ? await withSession(args.backend ?? (choice as BackendChoice), async (k) => {
            const p = await planUnchangedFile(k, read.bytes);
            return p && { backend: k.backend, plan: p, script: '', title: '' };
          })
        : undefined;
    const { backend, plan, script, title } =
      unchanged ??
      (await (async () => {
        const config = read ? configFromText(args.file, read.text) : loadConfig(args.file);
        return withSession(args.backend ?? config.backend, async (k) => {
          const p = await planConfig(k, config, { fromRecord: true, ...(read ? { bytes: read.bytes } : {}) });
          return {
            backend: k.backend,
            plan: p,
            script: k.impl.script(p),
            title: k.impl.capabilities.title.replace(/^the | backend$/g, ''),
          };
        });
      })());
    if (args.json) {
      process.stdout.write(`${JSON.stringify({ backend, ops: plan.ops, script }, null, 2)}\n`);
    } else {
      process.stdout.write(`backend: ${backend}\n${formatPlan(plan.ops)}\n`);
      if (args.script && script) process.stdout.write(`\n${title} transaction:\n${script.replace(/^/gm, '  ')}`);
    }
    if (args['detailed-exitcode'] && plan.ops.length > 0) process.exitCode = 2;
  },
};
