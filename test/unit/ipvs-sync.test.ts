// ha.sync with engine ipvs (validation), and which IPVS sync daemons slbctl
// starts, takes back, leaves alone or refuses to replace: the ownership
// rules, checked without a kernel (test/integration/ipvs-sync.test.ts runs
// the daemons in user-mode-linux).
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { parseConfig } from '../../src/model/parse';
import { syncSteps, wantedDaemons } from '../../src/ha/ipvs-sync';
import { resolveVrrp } from '../../src/ha/vrrp';
import { HaEngineError } from '../../src/ha/child';
import { NetInterface } from '../../src/kernel/rtnl/rtnl';

const service = `services:
  - vip: 172.16.75.84
    port: 80
    protocol: tcp
    mode: dsr
    realServers: [{ address: 172.16.75.82, port: 80, weight: 1 }]
`;
const VRRP = '  vrrp:\n    interface: eth0\n    virtualRouterId: 51\n    priority: 150\n';

function parse(sync: string, backend = 'ipvs') {
  return parseConfig(`backend: ${backend}\n${service}ha:\n${VRRP}  sync:\n${sync}`);
}
function issues(sync: string, backend = 'ipvs'): string[] {
  const r = parse(sync, backend);
  return r.ok ? [] : r.issues.map((i) => `${i.path}: ${i.message}`);
}

describe('ha.sync with engine ipvs', () => {
  it('takes interface and syncId, with the kernel default group and port', () => {
    const r = parse('    engine: ipvs\n    interface: eth1\n    syncId: 7\n');
    assert.ok(r.ok);
    assert.deepEqual(r.config.ha?.sync, { engine: 'ipvs', interface: 'eth1', syncId: 7, group: '224.0.0.81', port: 8848 });
    const auto = parse('    engine: ipvs\n    interface: eth1\n    syncId: 7\n    group: 239.1.2.3\n    port: 9000\n', 'auto');
    assert.ok(auto.ok);
    assert.deepEqual(auto.config.ha?.sync, { engine: 'ipvs', interface: 'eth1', syncId: 7, group: '239.1.2.3', port: 9000 });
  });

  it('refuses keys of the other engine, a missing or bad syncId, a unicast group, the nft backend: one sentence each', () => {
    assert.match(
      issues('    engine: ipvs\n    interface: eth1\n    syncId: 7\n    peer: 10.0.0.2\n').join(),
      /ha\.sync\.peer: does not apply to engine ipvs \(it is a conntrackd setting\); remove it/,
    );
    assert.match(
      issues('    engine: conntrackd\n    interface: eth1\n    peer: 10.0.0.2\n    syncId: 7\n', 'nft').join(),
      /ha\.sync\.syncId: does not apply to engine conntrackd \(it is a ipvs setting\); remove it/,
    );
    assert.match(issues('    engine: ipvs\n    interface: eth1\n').join(), /ha\.sync\.syncId: is required/);
    assert.match(
      issues('    engine: ipvs\n    interface: eth1\n    syncId: 0\n').join(),
      /ha\.sync\.syncId: 0 is not an IPVS sync id; use a whole number, 1-255/,
    );
    assert.match(
      issues('    engine: ipvs\n    interface: eth1\n    syncId: 7\n    group: 10.0.0.1\n').join(),
      /ha\.sync\.group: "10\.0\.0\.1" is not an IPv4 multicast group/,
    );
    assert.match(
      issues('    engine: ipvs\n    interface: eth1\n    syncId: 7\n    port: 0\n').join(),
      /ha\.sync\.port: 0 is not a UDP port/,
    );
    assert.match(
      issues('    engine: ipvs\n    interface: eth1\n    syncId: 7\n', 'nft').join(),
      /ha\.sync\.engine: ipvs syncs the IPVS backend's connections, and backend is nft/,
    );
  });

  it('at start: refuses another backend (auto resolved to nft) and an interface this host lacks', () => {
    const r = parse('    engine: ipvs\n    interface: eth1\n    syncId: 7\n', 'auto');
    assert.ok(r.ok);
    const interfaces: NetInterface[] = [{ index: 2, name: 'eth0', up: true, addresses: [] }];
    assert.throws(
      () => resolveVrrp(r.config, interfaces, 'nft'),
      (e: Error) => e instanceof HaEngineError && /backend is nft/.test(e.message),
    );
    assert.throws(() => resolveVrrp(r.config, interfaces, 'ipvs'), /ha\.sync\.interface: "eth1" does not exist on this host/);
    assert.deepEqual(resolveVrrp(r.config, [...interfaces, { index: 3, name: 'eth1', up: true, addresses: [] }], 'ipvs'), {});
  });
});

describe('which sync daemons slbctl starts and owns', () => {
  const want = wantedDaemons({ engine: 'ipvs', interface: 'eth1', syncId: 7, group: '224.0.0.81', port: 8848 });
  const [master, backup] = want;
  const other = { ...backup, syncId: 9 };

  it('none running: starts and owns both', () => {
    assert.deepEqual(syncSteps(want, [], []), { stop: [], start: want, own: want, borrowed: [] });
  });

  it('the same ones left by a killed controller: takes them back, starts nothing', () => {
    assert.deepEqual(syncSteps(want, want, want), { stop: [], start: [], own: want, borrowed: [] });
  });

  it('the same one started by someone else: used, not owned (left running at stop)', () => {
    assert.deepEqual(syncSteps(want, [backup], []), { stop: [], start: [master], own: [master], borrowed: [backup] });
  });

  it("its own with an older config: replaced; someone else's: refused before anything changes", () => {
    assert.deepEqual(syncSteps(want, [other], [other]), { stop: ['backup'], start: want, own: want, borrowed: [] });
    assert.throws(
      () => syncSteps(want, [other], []),
      /^HaEngineError: ha\.sync: a backup sync daemon on eth1 \(sync id 9, group 224\.0\.0\.81:8848\) already runs in this namespace and slbctl did not start it; stop it \(ipvsadm --stop-daemon backup\) or set ha\.sync to match it$/,
    );
  });
});
