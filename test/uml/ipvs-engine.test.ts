// Runs on a kernel with IPVS (started by test/integration/ipvs.test.ts): the
// engine's IPVS path: plan/apply/re-apply, one weight change is one message,
// a foreign service is refused, and a change the kernel rejects half-way is
// rolled back completely.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { closeSession, executePlan as executeUnlocked, KernelSession, openSession, planConfig } from '../../src/engine/engine';
import { Plan } from '../../src/plan/types';
import { withWriteLock } from '../../src/records/lock';
import { parseConfig } from '../../src/model/parse';
import { Config } from '../../src/model/types';
import { formatPlan } from '../../src/plan/format';
import { recordFile } from '../../src/records/netns';
import { run, runChecked } from '../../src/util/exec';

const executePlan = (k: KernelSession, p: Plan) => withWriteLock(5000, () => executeUnlocked(k, p));

function config(text: string): Config {
  const r = parseConfig(text);
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.config;
}

const service = (port: number, rs: string[], weight = 1) =>
  `  - { name: s${port}, vip: 10.0.0.1, port: ${port}, mode: dsr, scheduler: wlc, realServers: [${rs.map((a) => `{ address: ${a}, weight: ${weight} }`).join(', ')}] }\n`;

async function snapshot(): Promise<string> {
  const ipvs = await runChecked('ipvsadm', ['ipvsadm', '-Ln']);
  const addrs = await runChecked('ip', ['ip', '-o', '-4', 'addr', 'show', 'dev', 'slbe0']);
  const file = recordFile('ownership');
  const owned = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '(no record)';
  return `${ipvs.stdout}\n${addrs.stdout.replace(/valid_lft.*$/gm, '')}\n${owned}`;
}

describe('engine on the IPVS backend', () => {
  let k: KernelSession;
  before(async () => {
    await run(['ip', 'link', 'add', 'slbe0', 'type', 'veth', 'peer', 'name', 'slbe1']);
    await runChecked('addr', ['ip', 'addr', 'replace', '10.0.0.254/24', 'dev', 'slbe0']);
    await runChecked('up', ['ip', 'link', 'set', 'slbe0', 'up']);
    k = await openSession('ipvs');
  });
  after(async () => {
    const destroy = await planConfig(k, config('backend: ipvs\nservices: []\n'));
    await executePlan(k, destroy);
    closeSession(k);
    await run(['ip', 'link', 'del', 'slbe0']);
  });

  it('apply, re-apply, one weight change', async () => {
    const first = await planConfig(k, config(`backend: ipvs\nservices:\n${service(80, ['10.0.0.2', '10.0.0.3'])}`));
    assert.equal(formatPlan(first.ops).split('\n')[0], '+ address 10.0.0.1/32 dev slbe0');
    await executePlan(k, first);
    assert.match((await runChecked('ipvsadm', ['ipvsadm', '-Ln'])).stdout, /TCP {2}10\.0\.0\.1:80 wlc\n {2}-> 10\.0\.0\.2:80 +Route +1/);
    assert.deepEqual((await planConfig(k, config(`backend: ipvs\nservices:\n${service(80, ['10.0.0.2', '10.0.0.3'])}`))).ops, []);
    const heavier = await planConfig(
      k,
      config(
        `backend: ipvs\nservices:\n${service(80, ['10.0.0.2', '10.0.0.3'], 4)}`.replace(
          '{ address: 10.0.0.3, weight: 4 }',
          '{ address: 10.0.0.3, weight: 1 }',
        ),
      ),
    );
    assert.equal(formatPlan(heavier.ops), '~ real server tcp/10.0.0.1:80 -> 10.0.0.2:80 weight 1 -> 4');
    const sent = k.driver.requestsSent?.() ?? 0;
    await executePlan(k, heavier);
    assert.equal((k.driver.requestsSent?.() ?? 0) - sent, 1, 'one weight change is one netlink message');
  });

  it('persistence: timeout and netmask reach IPVS, and a change is one update', async () => {
    const persistent = (timeout: number) =>
      `backend: ipvs\nservices:\n${service(83, ['10.0.0.2']).replace('scheduler: wlc,', `scheduler: wlc, persistence: { timeout: ${timeout}, netmask: 255.255.255.0 },`)}`;
    await executePlan(k, await planConfig(k, config(persistent(300))));
    assert.match(
      (await runChecked('ipvsadm', ['ipvsadm', '-Ln'])).stdout,
      /TCP {2}10\.0\.0\.1:83 wlc persistent 300 mask 255\.255\.255\.0/,
    );
    assert.deepEqual((await planConfig(k, config(persistent(300)))).ops, []);
    const longer = await planConfig(k, config(persistent(600)));
    assert.match(formatPlan(longer.ops), /~ service tcp\/10\.0\.0\.1:83: persistence 300s\/255\.255\.255\.0 -> 600s\/255\.255\.255\.0/);
    await executePlan(k, longer);
    assert.match((await runChecked('ipvsadm', ['ipvsadm', '-Ln'])).stdout, /10\.0\.0\.1:83 wlc persistent 600 mask 255\.255\.255\.0/);
    await executePlan(
      k,
      await planConfig(
        k,
        config(
          `backend: ipvs\nservices:\n${service(80, ['10.0.0.2', '10.0.0.3'], 4).replace('{ address: 10.0.0.3, weight: 4 }', '{ address: 10.0.0.3, weight: 1 }')}`,
        ),
      ),
    );
  });

  it('a change the kernel rejects half-way is rolled back', async () => {
    const before = await snapshot();
    // 224.0.0.5 is multicast: IPVS refuses it as a destination (EINVAL) after the first new service went in.
    // validate refuses it too, so it goes in behind the validator's back: what is tested is the kernel's refusal.
    const wanted = config(
      `backend: ipvs\nservices:\n${service(80, ['10.0.0.2', '10.0.0.3'], 4).replace('{ address: 10.0.0.3, weight: 4 }', '{ address: 10.0.0.3, weight: 1 }')}${service(81, ['10.0.0.4'])}${service(82, ['10.0.0.5', '10.0.0.6'])}`.replace(
        'vip: 10.0.0.1, port: 81',
        'vip: 10.0.0.9, port: 81',
      ),
    );
    const multicast = wanted.services.find((s) => s.port === 82)?.realServers.find((r) => r.address === '10.0.0.6');
    assert.ok(multicast);
    multicast.address = '224.0.0.5';
    const bad = await planConfig(k, wanted);
    assert.ok(
      bad.ops.some((o) => o.op === 'add-address'),
      'the plan adds a VIP too',
    );
    await assert.rejects(executePlan(k, bad), /ipvs: add destination 224\.0\.0\.5:82 to service tcp 10\.0\.0\.1:82: invalid argument/);
    assert.equal(await snapshot(), before, 'IPVS, addresses and the ownership record are as they were');
  });

  it('a VIP:port served by an IPVS service slbctl did not create is refused', async () => {
    await runChecked('ipvsadm', ['ipvsadm', '-A', '-t', '10.0.0.7:80', '-s', 'rr']);
    try {
      await assert.rejects(
        planConfig(k, config(`backend: ipvs\nservices:\n${service(80, ['10.0.0.2']).replace('vip: 10.0.0.1', 'vip: 10.0.0.7')}`)),
        /tcp\/10\.0\.0\.7:80.*already served by an IPVS service slbctl did not create/,
      );
      const destroy = await planConfig(k, config('backend: ipvs\nservices: []\n'));
      assert.ok(!formatPlan(destroy.ops).includes('10.0.0.7'), 'and never touched by a destroy');
    } finally {
      await run(['ipvsadm', '-D', '-t', '10.0.0.7:80']);
    }
  });
});
