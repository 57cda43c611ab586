// Run as `node nft-plan.js plan|apply|plan-listed CONFIG.json` inside a
// network namespace: plans the config exactly as slbctl does (and applies it
// for `apply`), and prints what the plan saw as one JSON line: its operations,
// how many nftables tables it listed, and whether it started from slbctl's
// record of its tables. `plan-listed` lists the tables whatever the record
// says (what every plan did before the record).
import * as fs from 'node:fs';
import { Config } from '../../src/model/types';
import { closeSession, executePlan, openSession, planConfig } from '../../src/engine/engine';
import { withWriteLock } from '../../src/records/lock';
import { formatPlan } from '../../src/plan/format';
import { listingCount } from '../../src/kernel/nft/client';
import { closeGenerationSocket } from '../../src/kernel/nft/generation';

async function main(): Promise<void> {
  const [what, file] = process.argv.slice(2);
  if (!file || (what !== 'plan' && what !== 'apply' && what !== 'plan-listed'))
    throw new Error('usage: nft-plan.js plan|apply|plan-listed CONFIG.json');
  const config = JSON.parse(fs.readFileSync(file, 'utf8')) as Config;
  const k = await openSession('nft');
  try {
    const plan = await planConfig(k, config, { fromRecord: what !== 'plan-listed' });
    if (what === 'apply') await withWriteLock(0, () => executePlan(k, plan));
    const out = {
      ops: plan.ops.length,
      plan: formatPlan(plan.ops),
      listings: listingCount(),
      recorded: plan.observed.kernel.nftRecorded === true,
    };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } finally {
    closeSession(k);
    closeGenerationSocket();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`nft-plan: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
