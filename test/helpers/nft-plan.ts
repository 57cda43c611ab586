// Run as `node nft-plan.js plan|apply|plan-listed|apply-after-commit CONFIG.json`
// inside a network namespace: plans the config exactly as slbctl does (and
// applies it for `apply`), and prints what the plan saw as one JSON line: its
// operations, how many nftables tables it listed, whether it started from
// slbctl's record of its tables, and the apply's log. `plan-listed` lists the
// tables whatever the record says (what every plan did before the record);
// `apply-after-commit` commits an nftables change of its own (a table added
// and deleted) between the plan and its apply.
import * as fs from 'node:fs';
import { Config } from '../../src/model/types';
import { closeSession, executePlan, openSession, planConfig } from '../../src/engine/engine';
import { withWriteLock } from '../../src/records/lock';
import { formatPlan } from '../../src/plan/format';
import { listingCount } from '../../src/kernel/nft/client';
import { closeGenerationSocket } from '../../src/kernel/nft/generation';
import { closeBatchSockets } from '../../src/kernel/nft/batch';
import { runChecked } from '../../src/util/exec';

async function main(): Promise<void> {
  const [what, file] = process.argv.slice(2);
  if (!file || !['plan', 'apply', 'plan-listed', 'apply-after-commit'].includes(what ?? ''))
    throw new Error('usage: nft-plan.js plan|apply|plan-listed|apply-after-commit CONFIG.json');
  const config = JSON.parse(fs.readFileSync(file, 'utf8')) as Config;
  const k = await openSession('nft');
  try {
    const plan = await planConfig(k, config, { fromRecord: what !== 'plan-listed' });
    const log: string[] = [];
    if (what === 'apply-after-commit') {
      await runChecked('nft add table', ['nft', 'add', 'table', 'ip', 'nft_plan_between']);
      await runChecked('nft delete table', ['nft', 'delete', 'table', 'ip', 'nft_plan_between']);
    }
    if (what.startsWith('apply')) await withWriteLock(0, () => executePlan(k, plan, (line) => log.push(line)));
    const out = {
      ops: plan.ops.length,
      plan: formatPlan(plan.ops),
      listings: listingCount(),
      recorded: plan.observed.kernel.nftRecorded === true,
      log,
    };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } finally {
    closeSession(k);
    closeGenerationSocket();
    closeBatchSockets();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`nft-plan: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
