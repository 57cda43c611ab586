// The IPVS suite runs on a real IPVS kernel: in a fresh network namespace
// when this host's kernel has IPVS, otherwise inside Debian's user-mode-linux
// kernel. A skipped IPVS suite is not a pass: with neither, this fails.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { IpvsClient } from '../../src/kernel/ipvs/client';
import { runInUml, umlAvailable } from '../../src/uml/run';
import { run, runChecked } from '../../src/util/exec';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const GUEST_TESTS = ['ipvs-client', 'ipvs-engine', 'ipvs-drift', 'exit-codes', 'ipvs-lab', 'ipvs-controller'].map((f) =>
  path.join(__dirname, '..', 'uml', `${f}.test.js`),
);

async function hostHasIpvs(): Promise<boolean> {
  try {
    (await IpvsClient.open()).close();
    return true;
  } catch {
    return false;
  }
}

function summary(output: string): string {
  return output
    .split('\n')
    .filter((l) => /^# (tests|pass|fail)/.test(l))
    .join(', ');
}

describe('IPVS on a real IPVS kernel', { skip: isRoot ? false : 'needs root' }, () => {
  it('the IPVS client suite passes (host namespace or user-mode-linux)', { timeout: 25 * 60 * 1000 }, async (t) => {
    const argv = [process.execPath, '--test', ...GUEST_TESTS];
    if (await hostHasIpvs()) {
      const ns = `slbt-ipvs-${process.pid}`;
      await runChecked('netns', ['ip', 'netns', 'add', ns]);
      try {
        const r = await run(argv, { netns: ns });
        t.diagnostic(`host IPVS in netns ${ns}: ${summary(r.stdout)}`);
        assert.equal(r.code, 0, r.stdout + r.stderr);
      } finally {
        await run(['ip', 'netns', 'del', ns]);
      }
      return;
    }
    const missing = umlAvailable();
    assert.equal(missing, undefined, `IPVS SUITE NOT RUN: this kernel has no IPVS and user-mode-linux is unusable: ${missing}`);
    // Every IPVS suite in one guest: about 10 minutes alone on 2 cores, more beside other work (25 at most).
    const r = await runInUml(argv, { timeoutMs: 25 * 60 * 1000 });
    t.diagnostic(`user-mode-linux (${r.seconds.toFixed(1)} s): ${summary(r.output)}`);
    assert.equal(r.code, 0, r.output);
  });
});
