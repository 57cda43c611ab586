// The two nftables executors (src/kernel/nft/executor.ts) against the real
// kernel, in namespaces this test makes: the in-process one (libnftables)
// lands a transaction in the namespace the calling thread was in, never in
// the root namespace nor another lab's; it lists slbctl's table as the same
// JSON the nft program prints; a rejected script changes nothing and comes
// back with nft's own error text; and a slbctl killed while its transaction
// is being sent leaves all of it or none of it.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { run, runChecked } from '../../src/util/exec';
import { inNetns } from '../../src/util/netns';
import { applyScript, listTable } from '../../src/kernel/nft/client';
import { nftExecutor } from '../../src/kernel/nft/executor';
import { identityOf, removeRecordsOf } from '../../src/records/netns';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const tag = `${process.pid.toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
const nsA = `tnxa${tag}`;
const nsB = `tnxb${tag}`;
const PROBE = `slbctl_exec_probe_${tag}`;
const HELPER = path.join(__dirname, '..', 'helpers', 'nft-plan.js');
const BIG = path.join(__dirname, '..', 'helpers', 'nft-big.js');

const tables = async (ns?: string) => (await runChecked('nft list tables', ['nft', 'list', 'tables'], { netns: ns })).stdout;

async function withExecutor<T>(name: 'process' | 'libnftables', fn: () => Promise<T>): Promise<T> {
  const before = process.env.SLBCTL_NFT_EXEC;
  if (name === 'process') process.env.SLBCTL_NFT_EXEC = 'process';
  else delete process.env.SLBCTL_NFT_EXEC;
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env.SLBCTL_NFT_EXEC;
    else process.env.SLBCTL_NFT_EXEC = before;
  }
}

describe('nftables executors (netns)', { skip: isRoot ? false : 'needs root' }, () => {
  let dir = '';
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-nft-exec-'));
    for (const ns of [nsA, nsB]) await runChecked('netns', ['ip', 'netns', 'add', ns]);
    await runChecked('veth', ['ip', '-n', nsA, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0p']);
    await runChecked('addr', ['ip', '-n', nsA, 'addr', 'add', '198.18.0.1/15', 'dev', 'eth0']);
    await runChecked('up', ['ip', '-n', nsA, 'link', 'set', 'eth0', 'up']);
  });
  after(async () => {
    try {
      removeRecordsOf(identityOf(nsA));
    } finally {
      for (const ns of [nsA, nsB]) await run(['ip', 'netns', 'del', ns]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs in process by default, through the nft program with SLBCTL_NFT_EXEC=process', async () => {
    assert.equal(nftExecutor().name, 'libnftables');
    assert.equal(await withExecutor('process', () => Promise.resolve(nftExecutor().name)), 'process');
  });

  it('a transaction made while the thread is in a lab namespace lands there, not in the root namespace nor another lab', async () => {
    // Entered only for the call: the work runs later on a pool thread, in the namespace taken at the call.
    await inNetns(nsB, () => applyScript(`add table ip ${PROBE}\n`));
    await inNetns(nsA, () => applyScript(`add table ip ${PROBE}\nadd chain ip ${PROBE} in_a\n`));
    assert.doesNotMatch(await tables(), new RegExp(PROBE));
    assert.match(await tables(nsA), new RegExp(PROBE));
    const b = await runChecked('list', ['nft', 'list', 'table', 'ip', PROBE], { netns: nsB });
    assert.doesNotMatch(b.stdout, /in_a/);
    await inNetns(nsB, () => applyScript(`delete table ip ${PROBE}\n`));
    assert.doesNotMatch(await tables(nsB), new RegExp(PROBE));
  });

  it("a rejected script changes nothing and says nft's error, naming its line", async () => {
    const script = `add table ip ${PROBE}_bad\nadd chain ip ${PROBE}_bad c { type filter hook bogus priority 0; }\n`;
    for (const name of ['libnftables', 'process'] as const) {
      const e = await withExecutor(name, () => inNetns(nsA, () => applyScript(script))).catch((x: unknown) => x as Error);
      assert.ok(e instanceof Error, `${name}: rejected`);
      assert.match(e.message, /transaction rejected, nothing was changed: .*2:\d+-\d+: Error: unknown chain hook/s, name);
    }
    assert.doesNotMatch(await tables(nsA), new RegExp(`${PROBE}_bad`));
  });

  it('slbctl table applied in process lists as the same JSON through libnftables and through nft', async () => {
    const file = path.join(dir, 'config.json');
    const services = [0, 1, 2].map((i) => ({
      name: `svc${i}`,
      vip: `198.18.0.${i + 2}`,
      port: 80,
      protocol: 'tcp',
      mode: 'fullnat',
      scheduler: 'wrr',
      vipAlreadyPresent: 'allow',
      realServers: [0, 1].map((j) => ({ address: `198.19.0.${i * 2 + j + 2}`, port: 8080, weight: j + 1 })),
    }));
    fs.writeFileSync(file, JSON.stringify({ backend: 'nft', services }));
    const r = await run([process.execPath, HELPER, 'apply', file], { netns: nsA });
    assert.equal(r.code, 0, r.stderr);
    const inProcess = await withExecutor('libnftables', () => inNetns(nsA, () => listTable('ip')));
    const child = await withExecutor('process', () => inNetns(nsA, () => listTable('ip')));
    assert.ok(inProcess !== undefined);
    assert.deepEqual(inProcess, child);
    assert.equal(await inNetns(nsB, () => listTable('ip')), undefined);
  });

  it('a slbctl killed while sending a big transaction leaves all of it or none of it', { timeout: 120_000 }, async () => {
    const start = () => {
      const child = spawn('ip', ['netns', 'exec', nsB, process.execPath, BIG, PROBE], { stdio: ['ignore', 'pipe', 'inherit'] });
      const sending = new Promise<number>((resolve) => child.stdout.once('data', () => resolve(Date.now())));
      const closed = new Promise<number>((resolve) => child.once('close', () => resolve(Date.now())));
      return { child, sending, closed };
    };
    const elements = async (): Promise<number | undefined> => {
      const listed = await run(['nft', '-j', 'list', 'set', 'ip', PROBE, 'many'], { netns: nsB });
      if (listed.code !== 0) return undefined;
      await runChecked('delete', ['nft', 'delete', 'table', 'ip', PROBE], { netns: nsB });
      return (listed.stdout.match(/198\.19\./g) ?? []).length;
    };
    // One unkilled run: how long from "sending" to its end, most of it parsing and then the kernel's commit.
    const calibration = start();
    const length = (await calibration.closed) - (await calibration.sending);
    assert.equal(await elements(), 20000);
    const seen: string[] = [];
    for (const share of [0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95]) {
      const { child, sending, closed } = start();
      await sending;
      await new Promise((r) => setTimeout(r, share * length));
      child.kill('SIGKILL');
      await closed;
      const n = await elements();
      if (n !== undefined) assert.equal(n, 20000, `killed at ${share} of its ${length} ms: a part of the transaction was committed`);
      seen.push(`${share}: ${n === undefined ? 'none' : 'all'}`);
    }
    process.stderr.write(`killed mid-transaction (a run takes ${length} ms): ${seen.join(', ')}\n`);
  });
});
