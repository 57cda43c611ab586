// The user-mode-linux lab from a checkout under /tmp, which the guest mounts
// a private tmpfs over: a copy of this built project in /tmp runs `lab up
// --provider uml`, IPVS in the guest, and `lab verify` from another folder
// under /tmp; the pcaps land in that folder on the host.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { run } from '../../src/util/exec';
import { umlAvailable } from '../../src/uml/run';
import { stopUmlLab, umlLab } from '../../src/uml/lab';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const ROOT = path.join(__dirname, '..', '..', '..');
const lab = `ut${process.pid % 10000}`;

/** What slbctl needs at run time, copied (node_modules holds the native dependencies, built for this node). */
function copyProject(to: string): void {
  for (const p of ['dist', 'node_modules', 'package.json', 'scripts', 'bin', path.join('native', 'build')]) {
    fs.cpSync(path.join(ROOT, p), path.join(to, p), { recursive: true, verbatimSymlinks: true });
  }
}

describe('user-mode-linux from a checkout under /tmp', { skip: isRoot ? false : 'needs root', timeout: 5 * 60 * 1000 }, () => {
  it('lab up, IPVS in the guest, verify from another /tmp folder with the pcaps on the host, down', async () => {
    assert.equal(umlAvailable(), undefined, 'user-mode-linux is installed by scripts/setup.sh');
    const copy = fs.mkdtempSync('/tmp/slbctl-checkout-');
    const elsewhere = fs.mkdtempSync('/tmp/slbctl-cwd-');
    const slbctl = (cwd: string, ...args: string[]) =>
      run(['env', '-C', cwd, process.execPath, path.join(copy, 'bin', 'slbctl'), ...args], { timeoutMs: 3 * 60 * 1000 });
    try {
      copyProject(copy);
      const up = await slbctl(copy, 'lab', 'up', '--provider', 'uml', '--name', lab);
      assert.equal(up.code, 0, up.stdout + up.stderr);
      assert.doesNotMatch(up.stdout, /note:/, 'nothing the lab needs is hidden from the guest');

      const mode = await slbctl(copy, 'lab', 'mode', 'dsr', '--backend', 'ipvs', '--name', lab);
      assert.equal(mode.code, 0, mode.stdout + mode.stderr);
      const ipvsadm = await slbctl(copy, 'lab', 'exec', '--name', lab, 'lb', '--', 'ipvsadm', '-Ln');
      assert.equal(ipvsadm.code, 0, ipvsadm.stdout + ipvsadm.stderr);
      assert.match(ipvsadm.stdout, /-> 172\.16\.75\.82:80 +Route +1/);

      // Another working directory, under /tmp too: the guest is shown it before the command runs.
      const verify = await slbctl(elsewhere, 'lab', 'verify', '--name', lab, '--requests', '4');
      assert.equal(verify.code, 0, verify.stdout + verify.stderr);
      assert.match(verify.stdout, /verdict: PASS: dsr/);
      for (const host of ['client', 'lb', 'rs1', 'rs2']) {
        const pcap = path.join(elsewhere, 'slbctl-pcaps', lab, 'dsr', `${host}.pcap`);
        assert.ok(fs.existsSync(pcap) && fs.statSync(pcap).size > 24, `${pcap} is on the host`);
      }

      const down = await slbctl(copy, 'lab', 'down', '--name', lab);
      assert.equal(down.code, 0, down.stdout + down.stderr);
      assert.equal(umlLab(lab), undefined, 'the guest is gone');
    } finally {
      const left = umlLab(lab);
      if (left) await stopUmlLab(left);
      fs.rmSync(copy, { recursive: true, force: true });
      fs.rmSync(elsewhere, { recursive: true, force: true });
    }
  });
});
