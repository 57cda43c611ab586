// The IPVS sync daemons need a kernel with IPVS: this host's has none, so
// test/uml/ipvs-sync.test.ts runs inside Debian's user-mode-linux kernel (one
// guest, one suite). A host kernel with IPVS runs it directly.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { IpvsClient } from '../../src/kernel/ipvs/client';
import { runInUml, umlAvailable } from '../../src/uml/run';
import { run } from '../../src/util/exec';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const SUITE = path.join(__dirname, '..', 'uml', 'ipvs-sync.test.js');

describe('IPVS connection sync', { skip: isRoot ? false : 'needs root' }, () => {
  it('runs on a real IPVS kernel (user-mode-linux unless this host has IPVS)', { timeout: 10 * 60 * 1000 }, async (t) => {
    const argv = [process.execPath, '--test', '--test-reporter=tap', SUITE];
    const hostHasIpvs = await IpvsClient.open().then(
      (c) => (c.close(), true),
      () => false,
    );
    if (hostHasIpvs) {
      const r = await run(argv);
      t.diagnostic(
        r.stdout
          .split('\n')
          .filter((l) => l.startsWith('# '))
          .join('\n'),
      );
      assert.equal(r.code, 0, r.stdout + r.stderr);
      return;
    }
    const missing = umlAvailable();
    assert.equal(missing, undefined, `IPVS SYNC NOT TESTED: this kernel has no IPVS and user-mode-linux is unusable: ${missing}`);
    const r = await runInUml(argv, { timeoutMs: 8 * 60 * 1000 });
    t.diagnostic(`user-mode-linux (${r.seconds.toFixed(1)} s)`);
    for (const line of r.output.split('\n').filter((l) => /^\s*# /.test(l))) t.diagnostic(line.trim().slice(2));
    assert.equal(r.code, 0, r.output);
  });
});
