// `lab up --provider uml`: one user-mode-linux kernel kept running between
// commands; later commands find it by the lab's name, work through it
// unchanged, and the pcap files come back to the host.
import { after, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CLI_ENTRY } from '../../src/util/self';
import { umlAvailable } from '../../src/uml/run';
import { umlLab } from '../../src/uml/lab';
import { run } from '../../src/util/exec';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const lab = `um${process.pid % 10000}`;
const slbctl = (...args: string[]) => run([process.execPath, CLI_ENTRY, ...args], { timeoutMs: 5 * 60 * 1000 });

describe('lab on user-mode-linux', { skip: isRoot ? false : 'needs root', timeout: 15 * 60 * 1000 }, () => {
  after(async () => {
    await slbctl('lab', 'down', '--name', lab);
  });

  it('up, mode on IPVS, exec, verify with pcaps on the host, the L7 types, down', async () => {
    assert.equal(umlAvailable(), undefined, 'user-mode-linux is installed by scripts/setup.sh');
    const up = await slbctl('lab', 'up', '--provider', 'uml', '--name', lab);
    assert.equal(up.code, 0, up.stdout + up.stderr);
    const record = umlLab(lab);
    assert.ok(record, 'the running guest is recorded under the lab name');

    // No --backend: auto finds the guest kernel's IPVS (it has no nftables NAT).
    const mode = await slbctl('lab', 'mode', 'transparent', '--name', lab);
    assert.equal(mode.code, 0, mode.stdout + mode.stderr);
    assert.match(mode.stdout, /backend: ipvs/);

    const ipvsadm = await slbctl('lab', 'exec', '--name', lab, 'lb', '--', 'ipvsadm', '-Ln');
    assert.equal(ipvsadm.code, 0, ipvsadm.stdout);
    assert.match(ipvsadm.stdout, /-> 172\.16\.75\.85:80 +Masq +1/);
    const failing = await slbctl('lab', 'exec', '--name', lab, 'rs1', '--', 'ip', 'link', 'show', 'nosuchdev');
    assert.equal(failing.code, 1, 'the exit code comes back from the guest');

    const out = fs.mkdtempSync(path.join('/var/tmp', 'slbctl-uml-pcaps-'));
    try {
      // The report is drawn on the host from the guest's JSON (its ladder).
      const report = path.join(out, 'report.html');
      const verify = await slbctl('lab', 'verify', '--name', lab, '--requests', '8', '--out', out, '--report', report);
      assert.equal(verify.code, 0, verify.stdout + verify.stderr);
      assert.match(verify.stdout, /verdict: PASS: transparent/);
      const html = fs.readFileSync(report, 'utf8');
      assert.match(html, /<svg/);
      assert.match(html, /10\.8\.21\.40/, "the ladder shows the client's address");
      for (const host of ['client', 'lb', 'rs1', 'rs2'])
        assert.ok(fs.statSync(path.join(out, `${host}.pcap`)).size > 24, `${host}.pcap is on the host`);
      // The L7 types in the guest: HAProxy (the host's, the guest's root is the
      // host's filesystem) and, for transparent, the TPROXY return path on the
      // guest kernel's nft socket match and policy routing.
      for (const [mode, flags, title] of [
        ['transparent', ['--protocol', 'http'], /L7 transparent \(http\)/],
        ['fullnat', ['--protocol', 'http', '--cache'], /L7 reverse proxy \(http, cache\)/],
      ] as const) {
        const applied = await slbctl('lab', 'mode', mode, ...flags, '--name', lab);
        assert.equal(applied.code, 0, applied.stdout + applied.stderr);
        const dir = path.join(out, `${mode}-l7`);
        const l7 = await slbctl('lab', 'verify', '--name', lab, '--requests', '6', '--out', dir);
        assert.equal(l7.code, 0, l7.stdout + l7.stderr);
        assert.match(l7.stdout, new RegExp(`verdict: PASS: ${mode} `));
        assert.match(l7.stdout, title);
        assert.ok(l7.stdout.includes('every RS-side SYN comes after'), l7.stdout);
        if ((flags as readonly string[]).includes('--cache')) assert.match(l7.stdout, /L7 cache:/);
      }
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }

    const down = await slbctl('lab', 'down', '--name', lab);
    assert.equal(down.code, 0, down.stdout + down.stderr);
    assert.equal(umlLab(lab), undefined);
    for (
      let i = 0;
      i < 50 && fs.existsSync(`/proc/${record.pid}`) && !fs.readFileSync(`/proc/${record.pid}/stat`, 'utf8').includes(') Z');
      i++
    )
      await new Promise((r) => setTimeout(r, 100));
    assert.ok(
      !fs.existsSync(`/proc/${record.pid}`) || fs.readFileSync(`/proc/${record.pid}/stat`, 'utf8').includes(') Z'),
      'the guest kernel has stopped',
    );
    assert.ok(!fs.existsSync(record.work), 'its job folder is gone');
  });
});
