// Drift of every object slbctl owns on nftables, in the netns lab: each kind
// of hand edit (a hook chain deleted, a rule altered with its comment kept, a
// map element or a backend slot gone, a foreign chain added, the VIP removed
// …) is named by `plan`, repaired by `apply`, and restored by a running
// `slbctl run` within about one resync; the VIP then answers through full NAT
// again (curl from the lab's client, the RS reporting the balancer's address).
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { labDown, labUp, nsName } from '../../src/lab/netns';
import { REFERENCE_TOPOLOGY } from '../../src/lab/topology';
import { CLI_ENTRY } from '../../src/util/self';
import { run, runChecked } from '../../src/util/exec';
import { startController } from '../../src/lab/harness';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const lab = `tdr${(process.pid % 1000).toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
const LB = () => nsName(lab, 'lb');

const CONFIG = `backend: nft
services:
  - { name: web, vip: 172.16.75.84, port: 80, mode: fullnat, realServers: [{ address: 172.16.75.82, port: 80 }, { address: 172.16.75.85, port: 80 }] }
  - { name: alt, vip: 172.16.75.84, port: 8080, mode: fullnat, realServers: [{ address: 172.16.75.82, port: 80 }, { address: 172.16.75.85, port: 80 }] }
  - { name: dsr, vip: 172.16.75.86, port: 80, mode: dsr, realServers: [{ address: 172.16.75.82, port: 80 }, { address: 172.16.75.85, port: 80 }] }
`;

const nft = (...args: string[]) => runChecked(`nft ${args.join(' ')}`, ['nft', ...args], { netns: LB() });
const nftScript = (script: string) => runChecked('nft -f', ['nft', '-f', '-'], { netns: LB(), input: script });

/** The handle of the first rule of a chain (`nft -a list chain`). */
async function ruleHandle(family: string, chain: string): Promise<string> {
  const out = (await nft('-a', 'list', 'chain', family, 'slbctl', chain)).stdout;
  const m = /# handle (\d+)\s*$/m.exec(
    out
      .split('\n')
      .filter((l) => /# handle/.test(l) && !/chain /.test(l))
      .join('\n'),
  );
  if (!m?.[1]) throw new Error(`no rule in ${chain}:\n${out}`);
  return m[1];
}

interface Drift {
  name: string;
  edit: () => Promise<unknown>;
  /** What `plan` must say. */
  plan: RegExp;
}

const drifts: Drift[] = [
  {
    name: 'the prerouting hook chain deleted',
    edit: () => nft('delete', 'chain', 'ip', 'slbctl', 'prerouting'),
    plan: /~ repair chain ip prerouting: chain prerouting missing/,
  },
  {
    name: 'the prerouting hook made again at another priority',
    edit: () =>
      nftScript(
        'delete chain ip slbctl prerouting\nadd chain ip slbctl prerouting { type nat hook prerouting priority 50; policy accept; }\nadd rule ip slbctl prerouting meta l4proto . ip daddr . th dport vmap @services\n',
      ),
    plan: /~ repair chain ip prerouting: chain prerouting is hooked as "type nat hook prerouting priority 50 policy accept"/,
  },
  {
    name: 'the output hook rule removed',
    edit: () => nft('flush', 'chain', 'ip', 'slbctl', 'output'),
    plan: /~ repair chain ip output: chain output has 0 rules, not 1/,
  },
  {
    name: 'a hook rule duplicated',
    edit: () =>
      nft('add', 'rule', 'ip', 'slbctl', 'prerouting', 'meta', 'l4proto', '.', 'ip', 'daddr', '.', 'th', 'dport', 'vmap', '@services'),
    plan: /~ repair chain ip prerouting: chain prerouting has 2 rules, not 1/,
  },
  {
    name: 'the postrouting rule altered',
    edit: () =>
      nftScript(
        'flush chain ip slbctl postrouting\nadd rule ip slbctl postrouting ct status snat ct original ip daddr vmap @fullnat_vips\n',
      ),
    plan: /~ repair chain ip postrouting: a rule of chain postrouting was changed/,
  },
  {
    name: 'a services map element deleted',
    edit: () => nft('delete', 'element', 'ip', 'slbctl', 'services', '{ tcp . 172.16.75.84 . 80 }'),
    plan: /~ repair service tcp\/172\.16\.75\.84:80: services element missing/,
  },
  {
    name: 'a fullnat_vips element deleted',
    edit: () => nft('delete', 'element', 'ip', 'slbctl', 'fullnat_vips', '{ 172.16.75.84 }'),
    plan: /~ repair source NAT of 172\.16\.75\.84: fullnat_vips element 172\.16\.75\.84 missing/,
  },
  {
    name: 'a source-NAT chain emptied',
    edit: () => nft('flush', 'chain', 'ip', 'slbctl', 'snat_172_16_75_84'),
    plan: /~ repair source NAT of 172\.16\.75\.84: chain snat_172_16_75_84 has 0 rules, not 2/,
  },
  {
    name: 'one backend slot deleted',
    edit: () => nft('delete', 'element', 'ip', 'slbctl', 'backends_tcp', '{ 172.16.75.84 . 80 . 1 }'),
    plan: /~ repair service tcp\/172\.16\.75\.84:80: backend slot 1 missing/,
  },
  {
    name: 'a backend slot pointed at another server',
    edit: () =>
      nftScript(
        'delete element ip slbctl backends_tcp { 172.16.75.84 . 80 . 0 }\nadd element ip slbctl backends_tcp { 172.16.75.84 . 80 . 0 : 172.16.75.99 . 80 }\n',
      ),
    plan: /~ repair service tcp\/172\.16\.75\.84:80: backend slot 0 changed/,
  },
  {
    name: 'a member element deleted',
    edit: () => nft('delete', 'element', 'ip', 'slbctl', 'members', '{ tcp . 172.16.75.84 . 80 . 172.16.75.85 . 80 }'),
    plan: /\+ real server tcp\/172\.16\.75\.84:80 -> 172\.16\.75\.85:80 weight 1/,
  },
  {
    name: "a service's rule replaced, its comment kept",
    edit: async () => {
      const chain = 'svc_tcp_172_16_75_84_80';
      const handle = await ruleHandle('ip', chain);
      const listed = (await nft('list', 'chain', 'ip', 'slbctl', chain)).stdout;
      const comment = /comment "([^"]+)"/.exec(listed)?.[1] ?? '';
      return nft(
        'replace',
        'rule',
        'ip',
        'slbctl',
        chain,
        'handle',
        handle,
        'meta',
        'l4proto',
        'tcp',
        'counter',
        'dnat',
        'ip',
        'to',
        'ip',
        'daddr',
        '.',
        'tcp',
        'dport',
        '.',
        'numgen',
        'inc',
        'mod',
        '1',
        'map',
        '@backends_tcp',
        'comment',
        `"${comment}"`,
      );
    },
    plan: /~ repair service tcp\/172\.16\.75\.84:80: the rule of chain svc_tcp_172_16_75_84_80 was changed/,
  },
  {
    name: "a service's chain emptied",
    edit: () => nft('flush', 'chain', 'ip', 'slbctl', 'svc_tcp_172_16_75_84_8080'),
    plan: /~ service tcp\/172\.16\.75\.84:8080: name \(damaged\) -> alt/,
  },
  {
    name: 'the netdev ingress chain deleted',
    edit: () => nft('delete', 'chain', 'netdev', 'slbctl', 'ingress_eth0'),
    plan: /\+ ingress hook on eth0/,
  },
  {
    name: 'the ingress rule removed',
    edit: () => nft('flush', 'chain', 'netdev', 'slbctl', 'ingress_eth0'),
    plan: /~ repair chain netdev ingress_eth0: chain ingress_eth0 has 0 rules, not 1/,
  },
  {
    name: 'a DSR backend slot deleted',
    edit: () => nft('delete', 'element', 'netdev', 'slbctl', 'backends_tcp', '{ 172.16.75.86 . 80 . 0 }'),
    plan: /~ repair service tcp\/172\.16\.75\.86:80: backend slot 0 missing/,
  },
  {
    name: 'the services map deleted (its rules first)',
    edit: () => nftScript('flush chain ip slbctl prerouting\nflush chain ip slbctl output\ndelete map ip slbctl services\n'),
    plan: /~ rebuild table ip slbctl: map services missing/,
  },
  {
    name: 'the whole ip table deleted',
    edit: () => nft('delete', 'table', 'ip', 'slbctl'),
    plan: /\+ table ip slbctl\n(.|\n)*\+ service tcp\/172\.16\.75\.84:80/,
  },
  {
    name: "a chain added to slbctl's table by hand",
    edit: () => nft('add', 'chain', 'ip', 'slbctl', 'junk'),
    plan: /- chain ip slbctl junk: not one slbctl makes/,
  },
  {
    name: 'the VIP removed from the interface',
    edit: () => runChecked('ip addr del', ['ip', 'addr', 'del', '172.16.75.84/32', 'dev', 'eth0'], { netns: LB() }),
    plan: /\+ address 172\.16\.75\.84\/32 dev eth0/,
  },
];

describe('drift of every object slbctl owns (nftables, netns lab)', { skip: isRoot ? false : 'needs root' }, () => {
  let dir = '';
  let file = '';
  const slbctl = (...args: string[]) => run([process.execPath, CLI_ENTRY, ...args], { netns: LB() });

  /** Through full NAT: the RS answers and saw the balancer's address. */
  async function curlThroughVip(port: number): Promise<string> {
    const r = await run(['curl', '-sS', '--max-time', '5', `http://${REFERENCE_TOPOLOGY.vip}:${port}/`], { netns: nsName(lab, 'client') });
    return r.code === 0 ? r.stdout.trim() : `curl exit ${r.code}: ${r.stderr.trim()}`;
  }

  before(async () => {
    await labUp(lab, REFERENCE_TOPOLOGY);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-drift-'));
    file = path.join(dir, 'drift.yaml');
    fs.writeFileSync(file, CONFIG);
    const r = await slbctl('apply', '-f', file);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });
  after(async () => {
    await slbctl('destroy', '--force');
    await labDown(lab);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the lab answers through the VIP before any edit', async () => {
    assert.match(await curlThroughVip(80), /saw client 172\.16\.75\.83:/);
    assert.match(await curlThroughVip(8080), /saw client 172\.16\.75\.83:/);
  });

  it('status shows the drift it can see without the config (a backend slot deleted by hand)', async () => {
    await nft('delete', 'element', 'ip', 'slbctl', 'backends_tcp', '{ 172.16.75.84 . 80 . 1 }');
    const st = await slbctl('status');
    assert.match(
      st.stdout,
      /DRIFT: the kernel no longer holds what slbctl programmed(.|\n)*~ repair service tcp\/172\.16\.75\.84:80: backend slot 1 missing/,
    );
    const json = JSON.parse((await slbctl('status', '--json')).stdout) as { drift: string[] };
    assert.deepEqual(json.drift, ['~ repair service tcp/172.16.75.84:80: backend slot 1 missing']);
    assert.equal((await slbctl('apply', '-q', '-f', file)).code, 0);
    assert.doesNotMatch((await slbctl('status')).stdout, /DRIFT/);
  });

  for (const d of drifts) {
    it(`${d.name}: plan names the repair, apply makes it, the VIP answers again`, async () => {
      await d.edit();
      const planned = await slbctl('plan', '-f', file, '--no-nft', '--detailed-exitcode');
      assert.equal(planned.code, 2, `plan must find changes:\n${planned.stdout}${planned.stderr}`);
      assert.match(planned.stdout, d.plan);
      const applied = await slbctl('apply', '-q', '-f', file);
      assert.equal(applied.code, 0, applied.stdout + applied.stderr);
      const again = await slbctl('plan', '-f', file, '--detailed-exitcode');
      assert.equal(again.code, 0, `after the repair, plan must find nothing:\n${again.stdout}`);
      assert.match(await curlThroughVip(80), /saw client 172\.16\.75\.83:/);
      assert.match(await curlThroughVip(8080), /saw client 172\.16\.75\.83:/);
    });
  }

  it('slbctl run restores each kind of edit at its next resync, and counts it as drift', { timeout: 300_000 }, async (t) => {
    const controller = startController(LB(), file, ['--metrics', 'off', '--resync', '300ms']);
    const took: string[] = [];
    try {
      await controller.waitFor((l) => l.event === 'start' && /running/.test(l.msg), 30_000, 'the controller to start');
      for (const d of drifts) {
        const seen = controller.logs.filter((l) => l.event === 'drift').length;
        const edited = Date.now();
        await d.edit();
        await controller.waitFor(
          () => controller.logs.filter((l) => l.event === 'drift').length > seen,
          30_000,
          `drift repair of: ${d.name}`,
        );
        took.push(`${d.name}: ${Date.now() - edited} ms`);
        const planned = await slbctl('plan', '-f', file, '--detailed-exitcode');
        assert.equal(planned.code, 0, `${d.name}: after the controller's repair plan still finds:\n${planned.stdout}`);
      }
      t.diagnostic(`edit -> repaired (resync 300 ms): ${took.join('; ')}`);
      assert.match(await curlThroughVip(80), /saw client 172\.16\.75\.83:/);
    } finally {
      await controller.stop();
    }
  });
});
