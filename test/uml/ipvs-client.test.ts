// Runs on a kernel with IPVS (the UML guest, or a fresh namespace of a host
// that has IPVS), started by test/integration/ipvs.test.ts. Cross-checks
// slbctl's IPVS client against ipvsadm in both directions.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { BATCH_CHUNK, BATCH_WINDOW, IpvsCall, IpvsClient } from '../../src/kernel/ipvs/client';
import { IPVS_SCHEDULERS, SvcFlag } from '../../src/kernel/ipvs/constants';
import { IpvsDestination, IpvsService } from '../../src/kernel/ipvs/types';
import { run, runChecked } from '../../src/util/exec';

const svc = (over: Partial<IpvsService> = {}): IpvsService => ({
  protocol: 'tcp',
  address: '10.0.0.1',
  port: 80,
  scheduler: 'wrr',
  flags: 0,
  timeout: 0,
  netmask: '255.255.255.255',
  ...over,
});
const dest = (over: Partial<IpvsDestination> = {}): IpvsDestination => ({
  address: '10.0.0.2',
  port: 80,
  forwarding: 'masq',
  weight: 1,
  upperThreshold: 0,
  lowerThreshold: 0,
  ...over,
});

/** ipvsadm -Ln without its two header lines, trailing spaces trimmed. */
async function ipvsadmList(): Promise<string> {
  const r = await runChecked('ipvsadm', ['ipvsadm', '-Ln']);
  return r.stdout
    .split('\n')
    .slice(3)
    .map((l) => l.trimEnd())
    .filter(Boolean)
    .join('\n');
}

describe('IPVS client against the kernel and ipvsadm', () => {
  let client: IpvsClient;
  const created: Pick<IpvsService, 'protocol' | 'address' | 'port'>[] = [];

  before(async () => {
    // Real servers must be reachable addresses for the kernel to accept them.
    await run(['ip', 'link', 'add', 'slbt0', 'type', 'veth', 'peer', 'name', 'slbt1']);
    await runChecked('addr', ['ip', 'addr', 'replace', '10.0.0.254/24', 'dev', 'slbt0']);
    await runChecked('up', ['ip', 'link', 'set', 'slbt0', 'up']);
    await runChecked('up', ['ip', 'link', 'set', 'slbt1', 'up']);
    client = await IpvsClient.open();
  });
  after(async () => {
    for (const s of created) await client.deleteService(s).catch(() => undefined); // only what this test made
    client.close();
    await run(['ip', 'link', 'del', 'slbt0']);
  });

  it('what slbctl programs, ipvsadm -Ln shows', async () => {
    const s = svc();
    await client.addService(s);
    created.push(s);
    await client.addDestination(s, dest({ address: '10.0.0.2', port: 8080, forwarding: 'masq', weight: 3 }));
    await client.addDestination(s, dest({ address: '10.0.0.3', forwarding: 'route', weight: 1 }));
    await client.addDestination(s, dest({ address: '10.0.0.4', forwarding: 'tunnel', tunnelType: 'ipip', weight: 2 }));
    assert.equal(
      await ipvsadmList(),
      [
        'TCP  10.0.0.1:80 wrr',
        '  -> 10.0.0.2:8080                Masq    3      0          0',
        '  -> 10.0.0.3:80                  Route   1      0          0',
        '  -> 10.0.0.4:80                  Tunnel  2      0          0',
      ].join('\n'),
    );
  });

  it('what ipvsadm creates, slbctl reads back', async () => {
    await runChecked('ipvsadm', ['ipvsadm', '-A', '-u', '10.0.0.5:53', '-s', 'wlc', '-p', '300', '-M', '255.255.255.0']);
    created.push({ protocol: 'udp', address: '10.0.0.5', port: 53 });
    await runChecked('ipvsadm', ['ipvsadm', '-a', '-u', '10.0.0.5:53', '-r', '10.0.0.6:5353', '-m', '-w', '7', '-x', '100', '-y', '10']);
    await runChecked('ipvsadm', ['ipvsadm', '-a', '-u', '10.0.0.5:53', '-r', '10.0.0.7:53', '-i', '-w', '0']);
    const s = (await client.services()).find((x) => x.protocol === 'udp' && x.address === '10.0.0.5');
    assert.ok(s, 'the service ipvsadm created is listed');
    assert.equal(s.port, 53);
    assert.equal(s.scheduler, 'wlc');
    assert.equal(s.flags & SvcFlag.PERSISTENT, SvcFlag.PERSISTENT);
    assert.equal(s.timeout, 300);
    assert.equal(s.netmask, '255.255.255.0');
    const dests = (await client.destinations(s)).map(
      ({ stats: _s, activeConnections: _a, inactiveConnections: _i, persistentConnections: _p, ...d }) => d,
    );
    assert.deepEqual(
      dests.sort((a, b) => a.address.localeCompare(b.address)),
      [
        { address: '10.0.0.6', port: 5353, forwarding: 'masq', weight: 7, upperThreshold: 100, lowerThreshold: 10 },
        { address: '10.0.0.7', port: 53, forwarding: 'tunnel', tunnelType: 'ipip', weight: 0, upperThreshold: 0, lowerThreshold: 0 },
      ],
    );
  });

  it('one weight change is one SET_DEST message', async () => {
    const s = svc();
    const before = client.messagesSent;
    await client.updateDestination(s, dest({ address: '10.0.0.3', forwarding: 'route', weight: 9 }));
    assert.equal(client.messagesSent - before, 1);
    assert.match(await ipvsadmList(), /-> 10\.0\.0\.3:80 +Route +9 /);
  });

  it('every IPVS scheduler by name', async () => {
    for (const [i, scheduler] of IPVS_SCHEDULERS.entries()) {
      const s = svc({ address: '10.0.1.1', port: 1000 + i, scheduler });
      await client.addService(s);
      created.push(s);
    }
    const listed = (await client.services())
      .filter((s) => s.address === '10.0.1.1')
      .sort((a, b) => a.port - b.port)
      .map((s) => s.scheduler);
    assert.deepEqual(listed, [...IPVS_SCHEDULERS]);
  });

  it('a batch of 500 requests goes in a few sendmsg and every one is applied', async () => {
    const calls: IpvsCall[] = [];
    for (let i = 0; i < 100; i++) {
      const s = svc({ address: '10.0.2.1', port: 2000 + i });
      created.push(s);
      calls.push({ call: 'addService', service: s });
      for (let j = 0; j < 4; j++) calls.push({ call: 'addDestination', service: s, dest: dest({ address: `10.0.0.${10 + j}` }) });
    }
    const sends = client.sendCalls;
    const results = await client.batch(calls);
    assert.deepEqual(
      results.filter((r) => r !== undefined),
      [],
    );
    assert.equal(client.sendCalls - sends, Math.ceil(calls.length / BATCH_CHUNK));
    const listed = (await client.services()).filter((s) => s.address === '10.0.2.1');
    assert.equal(listed.length, 100);
    assert.equal((await client.destinations(svc({ address: '10.0.2.1', port: 2099 }))).length, 4);
  });

  it('a failing request in a batch is named; the ones already sent still run, the rest are not sent', async () => {
    const missing = svc({ address: '10.0.3.250', port: 80 });
    const calls: IpvsCall[] = [];
    for (let i = 0; i < BATCH_WINDOW + 50; i++) {
      const s = svc({ address: '10.0.3.1', port: 3000 + i });
      created.push(s);
      calls.push({ call: 'addService', service: s });
      if (i === 10) calls.push({ call: 'addDestination', service: missing, dest: dest({ address: '10.0.0.9' }) });
    }
    const results = await client.batch(calls);
    const failures = results.flatMap((r, i) => (r && r.errno !== 0 ? [{ i, message: r.message }] : []));
    assert.deepEqual(failures, [{ i: 11, message: 'ipvs: add destination 10.0.0.9:80 to service tcp 10.0.3.250:80: no such service' }]);
    const sent = results.findIndex((r) => r?.errno === 0);
    assert.ok(sent > 11, 'the requests sent with the failing one still ran');
    assert.ok(results.slice(sent).every((r) => r?.errno === 0 && /not sent/.test(r.message)));
    const listed = (await client.services()).filter((s) => s.address === '10.0.3.1');
    assert.equal(listed.length, sent - 1, 'every request that succeeded is in IPVS, nothing else');
  });

  it('errors name the step, the object and the reason', async () => {
    await assert.rejects(client.addService(svc()), /ipvs: add service tcp 10\.0\.0\.1:80: already exists/);
    await assert.rejects(
      client.addService(svc({ port: 81, scheduler: 'nosuch' })),
      /ipvs: add service tcp 10\.0\.0\.1:81: scheduler or persistence engine not available/,
    );
    await assert.rejects(
      client.deleteDestination(svc(), { address: '10.0.0.99', port: 80 }),
      /delete destination 10\.0\.0\.99:80 from service tcp 10\.0\.0\.1:80: no such destination/,
    );
    await assert.rejects(client.deleteService(svc({ port: 82 })), /ipvs: delete service tcp 10\.0\.0\.1:82: no such service/);
  });

  it('timeouts round trip, as ipvsadm sees them', async () => {
    const saved = await client.timeouts();
    try {
      await client.setTimeouts({ tcp: 901, tcpFin: 121, udp: 301 });
      const r = await runChecked('ipvsadm', ['ipvsadm', '-L', '--timeout']);
      assert.match(r.stdout, /Timeout \(tcp tcpfin udp\): 901 121 301/);
      assert.deepEqual(await client.timeouts(), { tcp: 901, tcpFin: 121, udp: 301 });
    } finally {
      await client.setTimeouts(saved);
    }
  });

  it('info reports the IPVS version', async () => {
    const info = await client.info();
    assert.match(info.version, /^1\.\d+\.\d+$/);
    assert.ok(info.connTableSize > 0);
  });
});
