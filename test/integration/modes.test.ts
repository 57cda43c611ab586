// Each forwarding mode end to end on the real kernel: a lab of its own
// (unique name, always torn down), the mode applied with slbctl inside the
// LB namespace, real HTTP requests with curl, verdict from packet captures.
// Plus the cases verify must not be fooled by.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openLongLived } from '../helpers/long-lived';
import { labDown, labUp, nsName, removeVipFromRealServer, setRealServerClientRoute } from '../../src/lab/netns';
import { applyLabMode } from '../../src/lab/mode';
import { CLI_ENTRY } from '../../src/util/self';
import { labServiceConfig } from '../../src/lab/lb-config';
import { REFERENCE_TOPOLOGY } from '../../src/lab/topology';
import { verifyLabMode } from '../../src/verify/run';
import { run } from '../../src/util/exec';
import { Mode } from '../../src/model/types';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const skip = isRoot ? false : 'needs root: network namespaces and nftables';
const quiet = () => undefined;

function uniqueLab(tag: string): string {
  return `t${tag}${(process.pid % 1000).toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`.slice(0, 12);
}

function outDir(lab: string, name: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `slbctl-${lab}-${name}-`));
}

function failed(report: Awaited<ReturnType<typeof verifyLabMode>>): string[] {
  return report.verdict.facts.filter((f) => !f.pass).map((f) => f.fact);
}

function withLab(tag: string, mode: Mode, body: (lab: string) => void): void {
  describe(`${mode} mode`, { skip }, () => {
    const lab = uniqueLab(tag);
    before(async () => {
      await labUp(lab, REFERENCE_TOPOLOGY);
      await applyLabMode(lab, mode, quiet);
    });
    after(async () => {
      await labDown(lab);
    });
    body(lab);
  });
}

withLab('f', 'fullnat', (lab) => {
  it('verify passes: the RSs see the LB address, replies come back through the LB', async () => {
    const report = await verifyLabMode(lab, undefined, 12, outDir(lab, 'ok'));
    assert.deepEqual(failed(report), []);
    assert.ok(
      report.requests.every((r) => r.clientSeen === '172.16.75.83'),
      'the RS HTTP servers reported the LB as client',
    );
    assert.deepEqual(new Set(report.requests.map((r) => r.realServer)), new Set(['rs1', 'rs2']));
    for (const file of Object.values(report.pcaps)) assert.ok(fs.statSync(file).size > 24, `${file} holds packets`);
  });

  it('lab exec runs a command on a lab host and passes its exit code through', async () => {
    const rules = await run([
      process.execPath,
      CLI_ENTRY,
      'lab',
      'exec',
      '--name',
      lab,
      'lb',
      '--',
      'nft',
      'list',
      'table',
      'ip',
      'slbctl',
    ]);
    assert.equal(rules.code, 0, rules.stderr);
    // The client's port is kept where free (no random: see snatRule).
    assert.match(rules.stdout, /snat (ip )?to 172\.16\.75\.83$/m);
    const failing = await run([process.execPath, CLI_ENTRY, 'lab', 'exec', '--name', lab, 'rs1', '--', 'ip', 'link', 'show', 'nosuchdev']);
    assert.equal(failing.code, 1);
  });

  it('verify --mode dsr fails on a fullnat lab and says why (exit 1)', async () => {
    const report = await verifyLabMode(lab, 'dsr', 6, outDir(lab, 'dsr'));
    assert.equal(report.verdict.pass, false);
    assert.ok(failed(report).includes('real servers see source'), `failed: ${failed(report).join(', ')}`);
    const cli = await run([
      process.execPath,
      CLI_ENTRY,
      'lab',
      'verify',
      '--name',
      lab,
      '--mode',
      'dsr',
      '-k',
      '4',
      '--out',
      outDir(lab, 'dsr-cli'),
    ]);
    assert.equal(cli.code, 1, cli.stdout + cli.stderr);
    assert.match(cli.stdout, /verdict: FAIL/);
  });

  it('a live connection survives re-apply and an unrelated change', async () => {
    const conn = openLongLived(nsName(lab, 'client'), '172.16.75.84', 80);
    try {
      assert.ok(await conn.connected(), 'client connected to the VIP');
      const dir = outDir(lab, 'cfg');
      const same = path.join(dir, 'same.yaml');
      fs.writeFileSync(same, labServiceConfig('fullnat', REFERENCE_TOPOLOGY));
      const again = await run([process.execPath, CLI_ENTRY, 'apply', '-f', same], { netns: nsName(lab, 'lb') });
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /no changes/);
      const changed = path.join(dir, 'changed.yaml');
      fs.writeFileSync(changed, labServiceConfig('fullnat', REFERENCE_TOPOLOGY).replace(/weight: 1\n/, 'weight: 3\n'));
      const change = await run([process.execPath, CLI_ENTRY, 'apply', '-f', changed], { netns: nsName(lab, 'lb') });
      assert.equal(change.code, 0, change.stderr);
      assert.match(change.stdout, /applied 1 operation/);
      const { code, output } = await conn.finish();
      assert.equal(code, 0, output);
      assert.match(output, /HTTP\/1\.1 200/);
      assert.match(output, /rs[12] saw client 172\.16\.75\.83/);
    } finally {
      conn.kill();
    }
  });
});

withLab('t', 'transparent', (lab) => {
  it('verify passes: the RSs see the client address, replies cross the LB', async () => {
    const report = await verifyLabMode(lab, undefined, 12, outDir(lab, 'ok'));
    assert.deepEqual(failed(report), []);
    assert.ok(report.requests.every((r) => r.clientSeen === '10.8.21.40'));
  });

  it('verify fails when an RS routes the client net past the LB', async () => {
    await setRealServerClientRoute(lab, 'rs2', '172.16.75.1');
    const report = await verifyLabMode(lab, undefined, 8, outDir(lab, 'bad'));
    assert.equal(report.verdict.pass, false);
    assert.ok(failed(report).includes("real servers' replies come back through the LB"), `failed: ${failed(report).join(', ')}`);
  });
});

withLab('d', 'dsr', (lab) => {
  it('verify passes: client -> VIP unchanged at the RSs, replies go straight to the client', async () => {
    const report = await verifyLabMode(lab, undefined, 16, outDir(lab, 'ok'));
    assert.deepEqual(failed(report), []);
    assert.ok(report.requests.every((r) => r.clientSeen === '10.8.21.40'));
  });

  it('verify fails when an RS lacks the VIP on its loopback', async () => {
    await removeVipFromRealServer(lab, 'rs2');
    const report = await verifyLabMode(lab, undefined, 12, outDir(lab, 'novip'));
    assert.equal(report.verdict.pass, false);
    // rs2 drops what it gets; if the flow hash happened to send it nothing, the distribution fact fails instead.
    const why = failed(report);
    assert.ok(
      why.includes('real servers reply from the VIP straight to the client') || why.includes('real servers that got connections'),
      `failed: ${why.join(', ')}`,
    );
  });
});
