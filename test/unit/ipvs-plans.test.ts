// The IPVS backend against its in-memory double (src/kernel/ipvs/memory.ts):
// each scenario's plan and the exact IPVS and source-NAT operations it makes
// are a golden file, test/fixtures/ipvs/<scenario>.txt (UPDATE_GOLDEN=1
// rewrites them); and a failure injected at every single step of every
// scenario leaves IPVS and the chain exactly as they were. The same code runs
// against the real kernel in user-mode-linux (test/uml/ipvs-engine.test.ts).
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { executeIpvs, observeIpvs } from '../../src/backends/ipvs/execute';
import { ownershipAfter } from '../../src/engine/ownership';
import { HostFacts, resolveConfig } from '../../src/engine/resolve';
import { MemoryIpvs } from '../../src/kernel/ipvs/memory';
import { MemorySnat } from '../../src/kernel/iptables/memory';
import { NetInterface } from '../../src/kernel/rtnl/rtnl';
import { Config, Service } from '../../src/model/types';
import { plan } from '../../src/plan/planner';
import { formatPlan } from '../../src/plan/format';
import { Plan } from '../../src/plan/types';
import { EMPTY_OWNERSHIP, Ownership } from '../../src/records/ownership';

const GOLDEN_DIR = path.join(__dirname, '..', '..', '..', 'test', 'fixtures', 'ipvs');

const eth0: NetInterface = {
  index: 2,
  name: 'eth0',
  up: true,
  mac: '02:00:00:00:00:83',
  addresses: [{ address: '10.0.0.254', prefixLength: 24 }],
};
const facts: HostFacts = { interfaces: [eth0], macOf: () => undefined };

const rs = (address: string, weight = 1, port = 80) => ({ address, port, weight });
const svc = (over: Partial<Service>): Service => ({
  name: 'web',
  vip: '10.0.0.1',
  port: 80,
  protocol: 'tcp',
  mode: 'fullnat',
  scheduler: 'rr',
  realServers: [rs('10.0.0.2'), rs('10.0.0.3')],
  ...over,
});
const web = svc({});
const dsr = svc({ name: 'dsr', vip: '10.0.0.9', mode: 'dsr', scheduler: 'wlc', realServers: [rs('10.0.0.2', 2), rs('10.0.0.3', 3)] });
const tunnel = svc({ name: 'tun', vip: '10.0.0.9', port: 443, mode: 'dsr', encapsulation: 'ipip', realServers: [rs('10.0.0.4', 1, 443)] });
const sticky = svc({
  name: 'sticky',
  port: 8080,
  mode: 'transparent',
  scheduler: 'sh',
  persistence: { timeout: 300, netmask: '255.255.255.0' },
  realServers: [rs('10.0.0.2', 1, 8080)],
});
const config = (...services: Service[]): Config => ({ backend: 'ipvs', services });

/** The kernel as the doubles hold it, read as the engine reads it. */
async function observed(ipvs: MemoryIpvs, snat: MemorySnat, record: Ownership, vips: string[]) {
  const kernel = await observeIpvs(ipvs, record, snat);
  kernel.ownedAddresses = record.addresses.map((a) => ({ address: a.address, device: a.device }));
  return {
    kernel,
    addresses: [{ address: '10.0.0.254', device: 'eth0' }, ...vips.map((v) => ({ address: v, device: 'eth0' }))],
    sysctls: {},
  };
}

interface World {
  ipvs: MemoryIpvs;
  snat: MemorySnat;
  record: Ownership;
  vips: string[];
}

async function planFor(w: World, c: Config): Promise<Plan> {
  const desired = { ...resolveConfig(c, facts, 'ipvs'), sysctls: {} };
  return plan(desired, await observed(w.ipvs, w.snat, w.record, w.vips));
}

/** Apply a config to the doubles as the engine does (addresses are the engine's, not the backend's: tracked here). */
async function applyTo(w: World, c: Config): Promise<Plan> {
  const p = await planFor(w, c);
  await executeIpvs(w.ipvs, p, () => undefined, w.snat);
  w.record = ownershipAfter(w.record, p, 'ipvs');
  w.vips = [...new Set(c.services.map((s) => s.vip))];
  return p;
}

async function world(before: Service[]): Promise<World> {
  const w: World = { ipvs: new MemoryIpvs(), snat: new MemorySnat(), record: EMPTY_OWNERSHIP, vips: [] };
  if (before.length) await applyTo(w, config(...before));
  w.ipvs.calls.length = 0;
  w.snat.calls.length = 0;
  return w;
}

const scenarios: { name: string; before: Service[]; after: Service[] }[] = [
  { name: 'first-apply', before: [], after: [web, dsr, tunnel, sticky] },
  { name: 'one-weight-change', before: [web, dsr], after: [web, { ...dsr, realServers: [rs('10.0.0.2', 2), rs('10.0.0.3', 5)] }] },
  { name: 'real-server-added-and-removed', before: [web], after: [{ ...web, realServers: [rs('10.0.0.3'), rs('10.0.0.5')] }] },
  {
    name: 'scheduler-and-persistence-change',
    before: [sticky],
    after: [{ ...sticky, scheduler: 'wrr', persistence: { timeout: 600, netmask: '255.255.255.0' } }],
  },
  { name: 'dsr-to-fullnat', before: [dsr], after: [{ ...dsr, mode: 'fullnat' }] },
  { name: 'fullnat-service-removed', before: [web, dsr], after: [dsr] },
  { name: 'destroy', before: [web, dsr, tunnel, sticky], after: [] },
];

describe('IPVS plans and their operations (golden files test/fixtures/ipvs/*.txt)', () => {
  for (const s of scenarios) {
    it(s.name, async () => {
      const w = await world(s.before);
      const p = await planFor(w, config(...s.after));
      await executeIpvs(w.ipvs, p, () => undefined, w.snat);
      const text = `# plan\n${formatPlan(p.ops)}\n# IPVS operations\n${w.ipvs.calls.join('\n') || '(none)'}\n# source NAT\n${w.snat.calls.join('\n') || '(none)'}\n# IPVS after\n${w.ipvs.dump() || '(empty)'}\n`;
      const file = path.join(GOLDEN_DIR, `${s.name}.txt`);
      if (process.env.UPDATE_GOLDEN === '1') {
        fs.mkdirSync(GOLDEN_DIR, { recursive: true });
        fs.writeFileSync(file, text);
      }
      assert.equal(text, fs.readFileSync(file, 'utf8'), `differs from ${file}; UPDATE_GOLDEN=1 rewrites it`);
      w.record = ownershipAfter(w.record, p, 'ipvs');
      w.vips = [...new Set(s.after.map((x) => x.vip))];
      assert.equal(formatPlan((await planFor(w, config(...s.after))).ops), 'no changes', 'planning again finds nothing');
    });
  }
});

describe('IPVS rollback: a failure at every step leaves IPVS and the source-NAT chain as they were', () => {
  for (const s of scenarios) {
    it(s.name, async () => {
      const probe = await world(s.before);
      const p = await planFor(probe, config(...s.after));
      await executeIpvs(probe.ipvs, p, () => undefined, probe.snat);
      const ipvsSteps = probe.ipvs.calls.length;
      const snatSteps = probe.snat.calls.length;
      assert.ok(ipvsSteps + snatSteps > 0, 'the scenario changes something');
      for (const [double, steps] of [
        ['ipvs', ipvsSteps],
        ['snat', snatSteps],
      ] as const) {
        for (let n = 1; n <= steps; n++) {
          const w = await world(s.before);
          const before = { ipvs: w.ipvs.dump(), snat: JSON.stringify(await w.snat.read()) };
          const failing = await planFor(w, config(...s.after));
          w[double].failAt = n;
          await assert.rejects(
            executeIpvs(w.ipvs, failing, () => undefined, w.snat),
            `${double} step ${n} fails`,
          );
          w.ipvs.failAt = 0;
          w.snat.failAt = 0;
          assert.equal(w.ipvs.dump(), before.ipvs, `IPVS after a failure at ${double} step ${n} of ${steps}`);
          assert.equal(JSON.stringify(await w.snat.read()), before.snat, `source NAT after a failure at ${double} step ${n} of ${steps}`);
        }
      }
    });
  }
});
