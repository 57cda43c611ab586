// Bad input to `slbctl run`, `drain` and `undrain`: one clear sentence, a
// documented exit code, nothing started and the kernel left as it was.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { run, RunResult } from '../../src/util/exec';
import { CLI_ENTRY } from '../../src/util/self';
import { createBalancerNetns, deleteNetns } from '../helpers/balancer-netns';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const ns = `slbt-run-${process.pid}-${Math.floor(Math.random() * 1e6)}`;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-runcli-'));

const good = `backend: nft
services:
  - name: web
    vip: 172.16.75.84
    port: 80
    mode: fullnat
    healthCheck: { type: tcp, interval: 200ms, timeout: 150ms }
    realServers:
      - { address: 172.16.75.82, port: 80 }
`;

function file(name: string, body: string): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, body);
  return f;
}

function slbctl(args: string[], timeoutMs = 20_000): Promise<RunResult> {
  return run([process.execPath, CLI_ENTRY, ...args], { netns: ns, timeoutMs });
}

describe('slbctl run, drain and undrain: bad input', { skip: isRoot ? false : 'needs root' }, () => {
  before(async () => {
    await createBalancerNetns(ns);
  });
  after(async () => {
    await deleteNetns(ns);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('an invalid config: exit 2, every error with its line, nothing programmed', async () => {
    const r = await slbctl(['run', '-f', file('bad.yaml', good.replace('timeout: 150ms', 'timeout: 2s'))]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /bad\.yaml:7:\d+: services\[0\]\.healthCheck\.timeout: 2000ms is longer than the interval \(200ms\)/);
    const t = await run(['nft', 'list', 'tables'], { netns: ns });
    assert.equal(t.stdout.trim(), '');
  });

  it('a bad --metrics or --resync: exit 2', async () => {
    const f = file('good.yaml', good);
    const m = await slbctl(['run', '-f', f, '--metrics', '9469']);
    assert.equal(m.code, 2);
    assert.match(m.stderr, /--metrics "9469" is not address:port/);
    const r = await slbctl(['run', '-f', f, '--resync', '10ms']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--resync "10ms" is not a duration from 100ms to one day/);
  });

  it('the metrics port taken: a clear sentence, exit 3, and the kernel untouched (the listener is bound before any change)', async () => {
    const holder = spawn(
      'ip',
      ['netns', 'exec', ns, process.execPath, '-e', "require('net').createServer().listen(9469, '127.0.0.1', () => console.log('ok'))"],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    try {
      await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
      const r = await slbctl(['run', '-f', file('good2.yaml', good)]);
      assert.equal(r.code, 3, r.stderr);
      assert.match(
        r.stderr,
        /cannot serve metrics on 127\.0\.0\.1:9469: the port is in use; choose another with --metrics ADDRESS:PORT, or --metrics off/,
      );
      const tables = await run(['nft', 'list', 'tables'], { netns: ns });
      assert.equal(tables.stdout.trim(), '', 'no slbctl table');
      const vip = await run(['ip', '-n', ns, '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
      assert.doesNotMatch(vip.stdout, /172\.16\.75\.84/, 'no VIP');
    } finally {
      holder.kill();
      await run(['nft', 'delete', 'table', 'ip', 'slbctl'], { netns: ns });
      await run(['ip', '-n', ns, 'addr', 'del', '172.16.75.84/32', 'dev', 'eth0']);
    }
  });

  it('drain and undrain of a service or real server that is not there: exit 2, named', async () => {
    const none = await slbctl(['drain', 'web', '172.16.75.82']);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no service web is programmed by slbctl/);
    const f = file('apply.yaml', good);
    assert.equal((await slbctl(['apply', '-f', f])).code, 0);
    try {
      const rs = await slbctl(['drain', 'web', '172.16.75.99']);
      assert.equal(rs.code, 2);
      assert.match(rs.stderr, /service web \(tcp\/172\.16\.75\.84:80\) has no real server 172\.16\.75\.99; it has 172\.16\.75\.82:80/);
      const un = await slbctl(['undrain', 'web', '172.16.75.82']);
      assert.equal(un.code, 2);
      assert.match(un.stderr, /172\.16\.75\.82:80 of web is not drained/);
      const d = await slbctl(['drain', 'web', '172.16.75.82', '--deadline', 'soon']);
      assert.equal(d.code, 2);
      assert.match(d.stderr, /--deadline "soon" is not a duration/);
    } finally {
      await slbctl(['destroy']);
    }
  });

  it('every new command has --help', async () => {
    for (const c of ['run', 'drain', 'undrain']) {
      const r = await run([process.execPath, CLI_ENTRY, c, '--help']);
      assert.equal(r.code, 0, c);
      assert.match(r.stdout, new RegExp(`slbctl ${c}`));
    }
  });
});
