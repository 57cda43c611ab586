// Two balancers as a VRRP pair on user-mode-linux, IPVS backend: `lab up
// --provider uml --balancers 2`, `lab mode fullnat --ha vrrp` (slbctl run on
// each balancer inside the guest: keepalived for the VIP, the kernel's IPVS
// sync daemons, master and backup on both, for the connections), `lab verify`
// (a live connection opened through the master survives its failure through
// the copy in the standby's IPVS table: same RS, same 4-tuple, now via the
// survivor), and the negative case: with --no-sync that connection is lost.
import { after, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CLI_ENTRY } from '../../src/util/self';
import { umlAvailable } from '../../src/uml/run';
import { run } from '../../src/util/exec';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const skip = !isRoot ? 'needs root' : (umlAvailable() ?? false);
const lab = `uv${process.pid % 10000}`;
const slbctl = (...args: string[]) => run([process.execPath, CLI_ENTRY, ...args], { timeoutMs: 8 * 60 * 1000 });

interface Report {
  verdict: { pass: boolean; facts: { fact: string; seen: string; pass: boolean; why?: string }[] };
  timings: { vipMovedMs?: number; copiedMs?: number };
}

const fact = (r: Report, re: RegExp) => r.verdict.facts.find((f) => re.test(f.fact));

describe('two balancers as a VRRP pair on user-mode-linux (IPVS, IPVS sync daemons)', { skip, timeout: 30 * 60 * 1000 }, () => {
  const out = fs.mkdtempSync(path.join('/var/tmp', 'slbctl-uml-vrrp-'));
  after(async () => {
    await slbctl('lab', 'down', '--name', lab);
    fs.rmSync(out, { recursive: true, force: true });
  });

  async function verify(): Promise<{ code: number; report: Report; text: string }> {
    const v = await slbctl('lab', 'verify', '--name', lab, '--requests', '6', '--json', '--out', out);
    const text = v.stdout + v.stderr;
    try {
      return { code: v.code, report: JSON.parse(v.stdout.slice(v.stdout.indexOf('{'))) as Report, text };
    } catch {
      assert.fail(`lab verify printed no report (exit ${v.code}): ${text}`);
    }
  }

  it('fullnat: the live connection survives the master through the synced IPVS entry; --no-sync: it is lost', async () => {
    const up = await slbctl('lab', 'up', '--provider', 'uml', '--balancers', '2', '--name', lab);
    assert.equal(up.code, 0, up.stdout + up.stderr);

    const mode = await slbctl('lab', 'mode', 'fullnat', '--ha', 'vrrp', '--name', lab);
    assert.equal(mode.code, 0, mode.stdout + mode.stderr);
    assert.match(mode.stdout, /lb: slbctl run .*keepalived: MASTER/);
    assert.match(mode.stdout, /lb2: slbctl run .*keepalived: BACKUP, the IPVS sync daemons copy/);
    // lab exec knows the one-balancer hosts; lb2's namespace is reached from lb's by name.
    for (const inLb2 of [[], ['ip', 'netns', 'exec', `${lab}-lb2`]]) {
      const daemons = await slbctl('lab', 'exec', '--name', lab, 'lb', '--', ...inLb2, 'ipvsadm', '-L', '--daemon');
      assert.match(daemons.stdout, /master sync daemon .*eth0/, daemons.stdout);
      assert.match(daemons.stdout, /backup sync daemon .*eth0/, daemons.stdout);
    }

    const { code, report, text } = await verify();
    assert.equal(code, 0, `${text}\n${JSON.stringify(report.verdict.facts, null, 1)}`);
    for (const re of [/holds a copy/, /takes the VIP/, /completes after it/, /same real server/, /through the survivor/])
      assert.equal(fact(report, re)?.pass, true, `${re}: ${JSON.stringify(fact(report, re))}`);
    console.log(
      `fullnat + IPVS sync: copy on the standby after ${report.timings.copiedMs ?? '?'} ms, VIP moved ${report.timings.vipMovedMs?.toFixed(0) ?? '?'} ms after lab fail (not asserted)`,
    );

    const noSync = await slbctl('lab', 'mode', 'fullnat', '--ha', 'vrrp', '--no-sync', '--name', lab);
    assert.equal(noSync.code, 0, noSync.stdout + noSync.stderr);
    assert.match(noSync.stdout, /no IPVS sync daemons: --no-sync/);
    const lost = await verify();
    assert.notEqual(lost.code, 0, 'the verdict fails');
    const live = fact(lost.report, /completes after it/);
    assert.equal(live?.pass, false, JSON.stringify(live));
    assert.match(live?.seen ?? '', /^lost: /);
    assert.match(live?.why ?? '', /without state sync .*sloppy_tcp=0/);
    assert.equal(fact(lost.report, /takes the VIP/)?.pass, true, JSON.stringify(lost.report.verdict.facts, null, 1));
    assert.equal(fact(lost.report, /new connections after the failure/)?.pass, true, JSON.stringify(lost.report.verdict.facts, null, 1));
    assert.equal(fact(lost.report, /holds a copy/), undefined, 'no copy is looked for without sync');

    const down = await slbctl('lab', 'down', '--name', lab);
    assert.equal(down.code, 0, down.stdout + down.stderr);
  });
});
