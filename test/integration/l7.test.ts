// L7 service types end to end in a netns lab of the test's own (unique name,
// always torn down): `lab mode fullnat --protocol http` makes slbctl start
// HAProxy in the balancer namespace; curl from the client gets answers from
// both real servers, which see the balancer's address; a weight change goes
// through the runtime API with no reload (same processes); a new real
// server is a seamless reload; destroy stops HAProxy and removes its files.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { labDown, labUp, nsName, setRealServerClientRoute } from '../../src/lab/netns';
import { verifyLabMode } from '../../src/verify/run';
import { applyLabMode } from '../../src/lab/mode';
import { DEFAULT_LAB_OPTIONS, labServiceConfig } from '../../src/lab/lb-config';
import { REFERENCE_TOPOLOGY } from '../../src/lab/topology';
import { CLI_ENTRY } from '../../src/util/self';
import { run } from '../../src/util/exec';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const skip = isRoot ? false : 'needs root: network namespaces';
const VIP = REFERENCE_TOPOLOGY.vip;

function uniqueLab(tag: string): string {
  return `t${tag}${(process.pid % 1000).toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`.slice(0, 12);
}

const lbCli = (lab: string, args: string[]) => run([process.execPath, CLI_ENTRY, ...args], { netns: nsName(lab, 'lb') });

/** `curl` from the client: the real server's answer (its name and the client address it saw) and its X-Real-Server header. */
async function get(lab: string, url: string, extra: string[] = []): Promise<{ code: number; body: string; server: string }> {
  const r = await run(['curl', '-sS', '-m', '5', '-D', '-', ...extra, url], { netns: nsName(lab, 'client') });
  const server = /^x-real-server: *(\S+)/im.exec(r.stdout)?.[1] ?? '';
  return {
    code: r.code,
    body: r.stdout
      .split(/\r?\n\r?\n/)
      .slice(1)
      .join('\n'),
    server,
  };
}

/** The HAProxy processes in the balancer's namespace (master and workers), by pid. */
async function haproxyPids(lab: string): Promise<number[]> {
  const r = await run(['ip', 'netns', 'pids', nsName(lab, 'lb')]);
  const pids = r.stdout.split('\n').filter(Boolean).map(Number);
  return pids.filter((p) => {
    try {
      return fs.readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'haproxy';
    } catch {
      return false;
    }
  });
}

describe('L7 reverse proxy (http) in the netns lab', { skip }, () => {
  const lab = uniqueLab('h');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-l7-'));

  before(async () => {
    await labUp(lab, REFERENCE_TOPOLOGY);
    await applyLabMode(lab, 'fullnat', () => undefined, { ...DEFAULT_LAB_OPTIONS, protocol: 'http' });
  });
  after(async () => {
    await lbCli(lab, ['destroy']);
    await labDown(lab);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('both real servers answer through HAProxy and see the balancer as client', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const r = await get(lab, `http://${VIP}/`);
      assert.equal(r.code, 0);
      assert.match(r.body, /^rs[12] saw client 172\.16\.75\.83:\d+ on 172\.16\.75\.\d+:80/);
      seen.add(r.server);
    }
    assert.deepEqual([...seen].sort(), ['rs1', 'rs2']);
    assert.ok((await haproxyPids(lab)).length >= 2, 'a master and a worker run in the balancer namespace');
    const plan = await lbCli(lab, ['plan', '-f', path.join('/run/slbctl/lab', lab, 'lb-fullnat.yaml')]);
    assert.equal(plan.code, 0, plan.stderr);
    assert.match(plan.stdout, /no changes/);
  });

  it('a weight goes through the runtime API: no reload, the same processes; status shows the sessions', async () => {
    const before = await haproxyPids(lab);
    const file = path.join(dir, 'weights.yaml');
    // rs2 (172.16.75.85) at weight 0: no new connections.
    fs.writeFileSync(
      file,
      labServiceConfig('fullnat', REFERENCE_TOPOLOGY, { ...DEFAULT_LAB_OPTIONS, protocol: 'http' }).replace(
        /(address: 172\.16\.75\.85\n\s+port: 80\n\s+weight:) 1/,
        '$1 0',
      ),
    );
    const plan = await lbCli(lab, ['plan', '-f', file]);
    assert.match(plan.stdout, /~ haproxy: http\/172\.16\.75\.84:80 real server 172\.16\.75\.85:80 weight 1 -> 0 \(runtime API\)/);
    const apply = await lbCli(lab, ['apply', '-f', file]);
    assert.equal(apply.code, 0, apply.stdout + apply.stderr);
    for (let i = 0; i < 4; i++) assert.equal((await get(lab, `http://${VIP}/`)).server, 'rs1');
    assert.deepEqual(await haproxyPids(lab), before, 'no process came or went');
    const again = await lbCli(lab, ['plan', '-f', file]);
    assert.match(again.stdout, /no changes/);
    const status = await lbCli(lab, ['status']);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /L7 \(HAProxy, runtime API\)/);
    const json = JSON.parse((await lbCli(lab, ['status', '--json'])).stdout) as {
      l7: { running: boolean; services: { realServers: { address: string; weight: number; sessions?: { total: number } }[] }[] };
    };
    assert.equal(json.l7.running, true);
    const servers = json.l7.services[0]?.realServers ?? [];
    assert.deepEqual(
      servers.map((r) => [r.address, r.weight]),
      [
        ['172.16.75.82', 1],
        ['172.16.75.85', 0],
      ],
    );
    assert.ok((servers[0]?.sessions?.total ?? 0) >= 4, 'rs1 served the requests, as the runtime API counts them');
  });

  it('a new real server is a seamless reload: a new worker, the master stays', async () => {
    const before = await haproxyPids(lab);
    const file = path.join(dir, 'reload.yaml');
    fs.writeFileSync(
      file,
      labServiceConfig('fullnat', REFERENCE_TOPOLOGY, { ...DEFAULT_LAB_OPTIONS, protocol: 'http' }).replace(
        /realServers:\n/,
        'realServers:\n      - address: 172.16.75.93\n        port: 80\n        weight: 0\n',
      ),
    );
    const apply = await lbCli(lab, ['apply', '-f', file]);
    assert.equal(apply.code, 0, apply.stdout + apply.stderr);
    assert.match(
      apply.stdout,
      /~ haproxy: seamless reload with a new configuration\n {4}~ http\/172\.16\.75\.84:80: \+ real server 172\.16\.75\.93:80/,
    );
    const after = await haproxyPids(lab);
    assert.ok(after.includes(Math.min(...before)), 'the master is the same process');
    assert.equal((await get(lab, `http://${VIP}/`)).code, 0);
  });

  it('destroy stops HAProxy and removes its files and the VIP', async () => {
    const d = await lbCli(lab, ['destroy']);
    assert.equal(d.code, 0, d.stdout + d.stderr);
    assert.deepEqual(await haproxyPids(lab), []);
    const addrs = await run(['ip', '-4', 'addr', 'show'], { netns: nsName(lab, 'lb') });
    assert.doesNotMatch(addrs.stdout, new RegExp(`${VIP.replace(/\./g, '\\.')}/32`));
    const r = await get(lab, `http://${VIP}/`);
    assert.notEqual(r.code, 0, 'nothing answers on the VIP');
  });
});

describe('L7 https in the netns lab', { skip }, () => {
  const lab = uniqueLab('s');
  before(async () => {
    await labUp(lab, REFERENCE_TOPOLOGY);
    await applyLabMode(lab, 'fullnat', () => undefined, { ...DEFAULT_LAB_OPTIONS, protocol: 'https' });
  });
  after(async () => {
    await lbCli(lab, ['destroy']);
    await labDown(lab);
  });

  it('TLS ends at the balancer with the lab certificate; the real servers get plain HTTP', async () => {
    const cert = path.join('/run/slbctl/lab', lab, 'lb.crt');
    const r = await get(lab, `https://${VIP}/`, ['--cacert', cert]);
    assert.equal(r.code, 0);
    assert.match(r.body, /^rs[12] saw client 172\.16\.75\.83:\d+ on 172\.16\.75\.\d+:80/);
  });
});

const failedFacts = (r: Awaited<ReturnType<typeof verifyLabMode>>) => r.verdict.facts.filter((f) => !f.pass).map((f) => f.fact);
const outDir = (lab: string, tag: string) => fs.mkdtempSync(path.join(os.tmpdir(), `slbctl-${lab}-${tag}-`));

describe('L7 transparent (http) in the netns lab: TPROXY return path, verified as L7 and refused as L4', { skip }, () => {
  const lab = uniqueLab('t');
  before(async () => {
    await labUp(lab, REFERENCE_TOPOLOGY);
    await applyLabMode(lab, 'transparent', () => undefined, { ...DEFAULT_LAB_OPTIONS, protocol: 'http' });
  });
  after(async () => {
    await lbCli(lab, ['destroy']);
    await labDown(lab);
  });

  it('verify passes: the RSs see the client, HAProxy answers the SYN and connects after the request', async () => {
    const report = await verifyLabMode(lab, undefined, 8, outDir(lab, 'ok'));
    assert.deepEqual(failedFacts(report), []);
    assert.ok(report.requests.every((r) => r.clientSeen === '10.8.21.40'));
    assert.match(report.verdict.title ?? '', /^L7 transparent \(http\)$/);
    const rules = await run(['ip', 'rule'], { netns: nsName(lab, 'lb') });
    assert.match(rules.stdout, /^7437:\s+from all fwmark 0x534c37 lookup 7437/m);
  });

  it('verified as L4 (--protocol tcp), it fails and names the fact', async () => {
    const report = await verifyLabMode(lab, undefined, 4, outDir(lab, 'l4'), { protocol: 'tcp' });
    assert.deepEqual(failedFacts(report), ["L4: each RS's SYN is the client's SYN forwarded, before any request byte"]);
  });

  it('a piece of the return path deleted by hand is drift: plan names it, apply repairs it', async () => {
    const file = path.join('/run/slbctl/lab', lab, 'lb-transparent.yaml');
    await run(['ip', 'route', 'del', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', '7437'], { netns: nsName(lab, 'lb') });
    // (No request meanwhile: its half-open connection to an RS would leave retransmissions in the next capture.)
    const plan = await lbCli(lab, ['plan', '-f', file]);
    assert.match(plan.stdout, /^\+ transparent proxy return path/m);
    const apply = await lbCli(lab, ['apply', '-f', file]);
    assert.equal(apply.code, 0, apply.stdout + apply.stderr);
    assert.equal((await get(lab, `http://${VIP}/`)).code, 0);
    assert.match((await lbCli(lab, ['plan', '-f', file])).stdout, /no changes/);
  });

  it('back to L4 transparent: HAProxy and the return path go, L4 verifies', async () => {
    await applyLabMode(lab, 'transparent', () => undefined, DEFAULT_LAB_OPTIONS);
    assert.deepEqual(await haproxyPids(lab), []);
    const rules = await run(['ip', 'rule'], { netns: nsName(lab, 'lb') });
    assert.doesNotMatch(rules.stdout, /fwmark 0x534c37/);
    const tables = await run(['nft', 'list', 'tables'], { netns: nsName(lab, 'lb') });
    assert.doesNotMatch(tables.stdout, /slbctl_l7/);
    const report = await verifyLabMode(lab, undefined, 4, outDir(lab, 'l4ok'));
    assert.deepEqual(failedFacts(report), []);
    assert.ok(report.verdict.facts.some((f) => f.fact.startsWith('L4:') && f.pass));
    const asL7 = await verifyLabMode(lab, undefined, 4, outDir(lab, 'asl7'), { protocol: 'http' });
    assert.ok(
      failedFacts(asL7).some((f) => f.startsWith('L7: the balancer answers')),
      `failed: ${failedFacts(asL7).join(', ')}`,
    );
  });

  // Last: its failed connections leave retransmissions behind that a later capture would see.
  it("fails when an RS's route back does not go through the balancer", async () => {
    await applyLabMode(lab, 'transparent', () => undefined, { ...DEFAULT_LAB_OPTIONS, protocol: 'http' });
    await setRealServerClientRoute(lab, 'rs2', '172.16.75.1');
    try {
      const report = await verifyLabMode(lab, undefined, 6, outDir(lab, 'route'));
      assert.equal(report.verdict.pass, false);
      assert.ok(failedFacts(report).includes('client requests answered'), `failed: ${failedFacts(report).join(', ')}`);
    } finally {
      await setRealServerClientRoute(lab, 'rs2', '172.16.75.83');
    }
  });
});

describe('L7 reverse proxy with a static cache in the netns lab', { skip }, () => {
  const lab = uniqueLab('c');
  before(async () => {
    await labUp(lab, REFERENCE_TOPOLOGY);
    await applyLabMode(lab, 'fullnat', () => undefined, { ...DEFAULT_LAB_OPTIONS, protocol: 'http', cache: true });
  });
  after(async () => {
    await lbCli(lab, ['destroy']);
    await labDown(lab);
  });

  it('a repeated GET of a static object reaches a real server once; every fact holds', async () => {
    const report = await verifyLabMode(lab, undefined, 6, outDir(lab, 'ok'));
    assert.deepEqual(failedFacts(report), []);
    assert.ok(report.verdict.facts.some((f) => f.fact.startsWith('L7 cache:') && f.pass));
  });

  it('without a cache, verify --cache fails and names the cache fact', async () => {
    await applyLabMode(lab, 'fullnat', () => undefined, { ...DEFAULT_LAB_OPTIONS, protocol: 'http' });
    const report = await verifyLabMode(lab, undefined, 4, outDir(lab, 'nocache'), { cache: true });
    assert.deepEqual(failedFacts(report), [
      'L7 cache: a repeated GET of a static object is answered by the balancer (no packet of it at any RS)',
    ]);
  });
});

describe('L7 bad input on a real balancer namespace', { skip }, () => {
  const lab = uniqueLab('b');
  before(async () => {
    await labUp(lab, REFERENCE_TOPOLOGY);
  });
  after(async () => {
    await lbCli(lab, ['destroy']);
    await labDown(lab);
  });

  it('a port another process holds on the balancer: one sentence, exit 4, nothing left (no VIP, no HAProxy)', async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-l7b-')), 'http.yaml');
    fs.writeFileSync(file, labServiceConfig('fullnat', REFERENCE_TOPOLOGY, { ...DEFAULT_LAB_OPTIONS, protocol: 'http' }));
    // Another program listens on every address's port 80 of the balancer.
    const holder = run(
      ['timeout', '20', 'python3', '-c', 'import socket,time;s=socket.socket();s.bind(("0.0.0.0",80));s.listen();time.sleep(20)'],
      {
        netns: nsName(lab, 'lb'),
      },
    );
    try {
      await new Promise((r) => setTimeout(r, 500));
      const apply = await lbCli(lab, ['apply', '-f', file]);
      assert.equal(apply.code, 4, apply.stdout + apply.stderr);
      assert.match(apply.stderr, /cannot bind socket/);
      assert.deepEqual(await haproxyPids(lab), []);
      const addrs = await run(['ip', '-4', 'addr', 'show'], { netns: nsName(lab, 'lb') });
      assert.doesNotMatch(addrs.stdout, /172\.16\.75\.84\/32/, 'the VIP added for it was taken back');
    } finally {
      await run(['pkill', '-f', 'time.sleep\\(20\\)']);
      await holder;
    }
  });
});

describe('L7 under slbctl run: health checks set HAProxy server state through the runtime API', { skip }, () => {
  const lab = uniqueLab('r');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-l7r-'));
  let controller: ReturnType<typeof run> | undefined;
  before(async () => {
    await labUp(lab, REFERENCE_TOPOLOGY);
  });
  after(async () => {
    await run(['pkill', '-TERM', '-f', `${dir}/run.yaml`]);
    await controller;
    await lbCli(lab, ['destroy']);
    await labDown(lab);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a real server that stops answering gets weight 0 in HAProxy, with no reload; the other serves every request', async () => {
    const file = path.join(dir, 'run.yaml');
    fs.writeFileSync(
      file,
      `services:
  - name: web
    vip: ${VIP}
    port: 80
    protocol: http
    mode: fullnat
    healthCheck: { type: http, interval: 200ms, timeout: 150ms, rise: 1, fall: 2 }
    realServers:
      - { address: 172.16.75.82, port: 80 }
      - { address: 172.16.75.85, port: 80 }
`,
    );
    controller = run([process.execPath, CLI_ENTRY, 'run', '-f', file, '--metrics', 'off'], {
      netns: nsName(lab, 'lb'),
      timeoutMs: 120_000,
    });
    const weights = async () => {
      const r = await lbCli(lab, ['status', '--json']);
      if (r.code !== 0) return [];
      const j = JSON.parse(r.stdout) as { l7: { services: { realServers: { address: string; weight: number }[] }[] } | null };
      return (j.l7?.services[0]?.realServers ?? []).map((x) => `${x.address}=${x.weight}`);
    };
    const until = async (want: string[]) => {
      for (let i = 0; i < 150 && JSON.stringify(await weights()) !== JSON.stringify(want); i++)
        await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(await weights(), want);
    };
    await until(['172.16.75.82=1', '172.16.75.85=1']);
    const pids = await haproxyPids(lab);
    // rs2's HTTP server stops.
    const inRs2 = await run(['ip', 'netns', 'pids', nsName(lab, 'rs2')]);
    for (const p of inRs2.stdout.split('\n').filter(Boolean)) {
      const cmdline = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8');
      if (cmdline.includes('rs-http-server')) process.kill(Number(p), 'SIGTERM');
    }
    await until(['172.16.75.82=1', '172.16.75.85=0']);
    // status: slbctl's health beside HAProxy's own state (HAProxy checks nothing itself).
    assert.match((await lbCli(lab, ['status'])).stdout, /172\.16\.75\.85:80\s+0\s+down\s+no check/);
    for (let i = 0; i < 4; i++) assert.equal((await get(lab, `http://${VIP}/`)).server, 'rs1');
    assert.deepEqual(await haproxyPids(lab), pids, 'the weight went through the runtime API: no process came or went');
  });
});

describe('L7 drain without a controller', { skip }, () => {
  const lab = uniqueLab('d');
  before(async () => {
    await labUp(lab, REFERENCE_TOPOLOGY);
    await applyLabMode(lab, 'fullnat', () => undefined, { ...DEFAULT_LAB_OPTIONS, protocol: 'http' });
  });
  after(async () => {
    await lbCli(lab, ['destroy']);
    await labDown(lab);
  });

  it('drain takes an L7 real server out through HAProxy (weight 0, then gone); undrain brings it back; nothing left to plan', async () => {
    const drain = await lbCli(lab, ['drain', 'web', '172.16.75.85', '--deadline', '10s']);
    assert.equal(drain.code, 0, drain.stdout + drain.stderr);
    assert.match(drain.stdout, /draining 172\.16\.75\.85:80 from web \(http\/172\.16\.75\.84:80\): weight 1 -> 0/);
    assert.match(drain.stdout, /172\.16\.75\.85:80 removed from web after [\d.]+ s: no connections left/);
    for (let i = 0; i < 4; i++) assert.equal((await get(lab, `http://${VIP}/`)).server, 'rs1');
    const undrain = await lbCli(lab, ['undrain', 'web', '172.16.75.85']);
    assert.equal(undrain.code, 0, undrain.stdout + undrain.stderr);
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) seen.add((await get(lab, `http://${VIP}/`)).server);
    assert.deepEqual([...seen].sort(), ['rs1', 'rs2']);
    const plan = await lbCli(lab, ['plan', '-f', path.join('/run/slbctl/lab', lab, 'lb-fullnat.yaml')]);
    assert.match(plan.stdout, /no changes/);
  });
});
