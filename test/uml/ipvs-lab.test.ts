// Runs on a kernel with IPVS (the UML guest, or a fresh namespace of a host
// with IPVS), started by test/integration/ipvs.test.ts: the reference lab
// with the balancer on the IPVS backend, each mode proven by capture.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { labDown, labExec, labUp, nsName } from '../../src/lab/netns';
import { DEFAULT_LAB_OPTIONS, labServiceConfig } from '../../src/lab/lb-config';
import { CLI_ENTRY } from '../../src/util/self';
import { run } from '../../src/util/exec';
import { openLongLived } from '../helpers/long-lived';
import { applyLabMode } from '../../src/lab/mode';
import { REFERENCE_TOPOLOGY } from '../../src/lab/topology';
import { verifyLabMode } from '../../src/verify/run';
import { Mode } from '../../src/model/types';

const cases: { mode: Mode; encapsulation?: 'ipip'; forward: RegExp }[] = [
  { mode: 'fullnat', forward: /-> 172\.16\.75\.82:80 +Masq +1/ },
  { mode: 'transparent', forward: /-> 172\.16\.75\.82:80 +Masq +1/ },
  { mode: 'dsr', forward: /-> 172\.16\.75\.82:80 +Route +1/ },
  { mode: 'dsr', encapsulation: 'ipip', forward: /-> 172\.16\.75\.82:80 +Tunnel +1/ },
];

for (const c of cases) {
  describe(`${c.mode}${c.encapsulation ? ` (${c.encapsulation})` : ''} on IPVS`, () => {
    const lab = `u${c.mode.slice(0, 3)}${c.encapsulation ? 'i' : ''}${process.pid % 1000}`;
    before(async () => {
      await labUp(lab, REFERENCE_TOPOLOGY);
      await applyLabMode(lab, c.mode, () => undefined, {
        ...DEFAULT_LAB_OPTIONS,
        backend: 'ipvs',
        encapsulation: c.encapsulation ?? 'none',
      });
    });
    after(async () => {
      await labDown(lab);
    });

    it('ipvsadm on the LB shows the service slbctl programmed', async () => {
      const r = await labExec(lab, 'lb', ['ipvsadm', '-Ln']);
      assert.match(r.stdout, /TCP {2}172\.16\.75\.84:80 rr/);
      assert.match(r.stdout, c.forward);
      if (c.mode === 'fullnat') {
        const nat = await labExec(lab, 'lb', ['iptables-legacy', '-t', 'nat', '-S', 'SLBCTL-SNAT']);
        assert.match(nat.stdout, /-m ipvs --vaddr 172\.16\.75\.84(\/32)? --vport 80 --vdir ORIGINAL -j SNAT --to-source 172\.16\.75\.83/);
      }
    });

    it('verify passes by packet capture', async () => {
      const report = await verifyLabMode(lab, c.mode, 12, fs.mkdtempSync(path.join(os.tmpdir(), `ipvs-${c.mode}-`)));
      assert.deepEqual(
        report.verdict.facts.filter((f) => !f.pass).map((f) => `${f.fact}: ${f.why}`),
        [],
      );
      if (c.encapsulation)
        assert.ok(report.verdict.facts.some((f) => f.fact === 'client packets reach the RSs in IP-in-IP from the LB' && f.pass));
    });

    if (c.mode === 'transparent') {
      it('a live connection survives an unrelated change; status shows IPVS counters', async () => {
        const conn = openLongLived(nsName(lab, 'client'), REFERENCE_TOPOLOGY.vip, 80);
        try {
          assert.ok(await conn.connected());
          const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ipvs-cfg-')), 'heavier.yaml');
          fs.writeFileSync(
            file,
            labServiceConfig('transparent', REFERENCE_TOPOLOGY, { ...DEFAULT_LAB_OPTIONS, backend: 'ipvs' }).replace(
              /weight: 1\n/,
              'weight: 3\n',
            ),
          );
          const change = await run([process.execPath, CLI_ENTRY, 'apply', '-f', file], { netns: nsName(lab, 'lb') });
          assert.equal(change.code, 0, change.stderr);
          assert.match(
            change.stdout,
            /backend: ipvs\n~ real server tcp\/172\.16\.75\.84:80 -> 172\.16\.75\.82:80 weight 1 -> 3\napplied 1 operation/,
          );
          const status = await run([process.execPath, CLI_ENTRY, 'status'], { netns: nsName(lab, 'lb') });
          assert.match(status.stdout, /backend: ipvs/);
          assert.match(
            status.stdout,
            /172\.16\.75\.8[25]:80 +[13] +no controller +1\/\d+ +[1-9]\d* +[1-9]\d*/,
            `one active connection and its packets and bytes show:\n${status.stdout}`,
          );
          const { code, output } = await conn.finish();
          assert.equal(code, 0, output);
          assert.match(output, /rs[12] saw client 10\.8\.21\.40/);
          await applyLabMode(lab, c.mode, () => undefined, {
            ...DEFAULT_LAB_OPTIONS,
            backend: 'ipvs',
            encapsulation: c.encapsulation ?? 'none',
          }); // back to the reference weights
        } finally {
          conn.kill();
        }
      });
    }

    if (c.mode === 'fullnat') {
      it('lab verify judging a fullnat lab as dsr fails with exit 1 and says why', async () => {
        const out = fs.mkdtempSync(path.join(os.tmpdir(), 'ipvs-wrong-'));
        const cli = await run([process.execPath, CLI_ENTRY, 'lab', 'verify', '--name', lab, '--mode', 'dsr', '-k', '4', '--out', out]);
        assert.equal(cli.code, 1, cli.stdout + cli.stderr);
        assert.match(cli.stdout, /real servers see source .*FAIL/);
      });

      it('moving the service to another mode removes the source NAT chain it owned', async () => {
        await applyLabMode(lab, 'transparent', () => undefined, { ...DEFAULT_LAB_OPTIONS, backend: 'ipvs' });
        const nat = await labExec(lab, 'lb', ['iptables-legacy', '-t', 'nat', '-S']);
        assert.doesNotMatch(nat.stdout, /SLBCTL-SNAT/);
        await applyLabMode(lab, c.mode, () => undefined, { ...DEFAULT_LAB_OPTIONS, backend: 'ipvs' });
      });
    }

    it('re-applying the same config changes nothing', async () => {
      const lines: string[] = [];
      await applyLabMode(lab, c.mode, (l) => lines.push(l), {
        ...DEFAULT_LAB_OPTIONS,
        backend: 'ipvs',
        encapsulation: c.encapsulation ?? 'none',
      });
      assert.ok(
        lines.some((l) => /no changes/.test(l)),
        lines.join('\n'),
      );
    });
  });
}
