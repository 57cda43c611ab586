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
import { labDown, labUp, nsName } from '../../src/lab/netns';
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
    const cert = path.join('/run/slbctl/lab', lab, 'lb-cert.pem');
    const r = await get(lab, `https://${VIP}/`, ['--cacert', cert]);
    assert.equal(r.code, 0);
    assert.match(r.body, /^rs[12] saw client 172\.16\.75\.83:\d+ on 172\.16\.75\.\d+:80/);
  });
});
