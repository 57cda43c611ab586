// Two balancers behind BGP ECMP in the netns lab, through the CLI as a user
// runs it: lab up --balancers 2, lab mode dsr --ha ecmp (slbctl run and BIRD
// on each balancer, BIRD on the router), lab verify (flows on both balancers;
// a live connection survives the failure of the one carrying it), the VIP
// withdrawn while every real server fails its checks and announced again when
// they pass, withdrawn when a controller stops, and lab fail/recover.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { run, runChecked } from '../../src/util/exec';
import { CLI_ENTRY } from '../../src/util/self';
import { labDown, nsName } from '../../src/lab/netns';
import { routerNextHops, startLabController, stopLabController } from '../../src/lab/ha';
import { REAL_SERVERS, REFERENCE_TOPOLOGY } from '../../src/lab/topology';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const haveBird = fs.existsSync('/usr/sbin/bird') || fs.existsSync('/usr/bin/bird');
const skip = !isRoot ? 'needs root: creates network namespaces' : !haveBird ? 'needs BIRD 2 (scripts/setup.sh installs bird2)' : false;
const lab = `te${(process.pid % 1000).toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
const vip = REFERENCE_TOPOLOGY.vip;
const LB = '172.16.75.83';
const LB2 = '172.16.75.86';

const slbctl = (...args: string[]) => run([process.execPath, CLI_ENTRY, ...args], { timeoutMs: 180_000 });

async function waitForHops(want: string[], timeoutMs: number): Promise<string[]> {
  const until = Date.now() + timeoutMs;
  let seen: string[] = [];
  while (Date.now() < until) {
    seen = await routerNextHops(lab, vip);
    if (seen.join(',') === [...want].sort().join(',')) return seen;
    await new Promise((r) => setTimeout(r, 100));
  }
  return seen;
}

/** Every real server refuses the service port (its checks fail), or accepts it again. */
async function blockRealServers(block: boolean): Promise<void> {
  for (const h of REAL_SERVERS) {
    const ns = nsName(lab, h);
    if (block) {
      await runChecked('block', ['nft', 'add', 'table', 'inet', 'tblock'], { netns: ns });
      await runChecked('block', ['nft', 'add', 'chain', 'inet', 'tblock', 'input', '{ type filter hook input priority 0; }'], {
        netns: ns,
      });
      await runChecked('block', ['nft', 'add', 'rule', 'inet', 'tblock', 'input', 'tcp', 'dport', '80', 'drop'], { netns: ns });
    } else await runChecked('unblock', ['nft', 'delete', 'table', 'inet', 'tblock'], { netns: ns });
  }
}

describe('two balancers, BGP ECMP (netns lab)', { skip, timeout: 10 * 60_000 }, () => {
  before(async () => {
    const up = await slbctl('lab', 'up', '--name', lab, '--balancers', '2');
    assert.equal(up.code, 0, up.stderr + up.stdout);
  });
  after(async () => {
    await labDown(lab);
  });

  it('refuses --ha ecmp for a NAT mode, with the reason', async () => {
    const r = await slbctl('lab', 'mode', 'fullnat', '--ha', 'ecmp', '--name', lab);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--ha ecmp is built for dsr/);
  });

  it('announces the VIP from both balancers; verify proves ECMP spread and a connection surviving failover', async () => {
    const mode = await slbctl('lab', 'mode', 'dsr', '--ha', 'ecmp', '--name', lab);
    assert.equal(mode.code, 0, mode.stderr + mode.stdout);
    assert.deepEqual(await routerNextHops(lab, vip), [LB, LB2]);
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-ecmp-'));
    try {
      const v = await slbctl('lab', 'verify', '--name', lab, '--json', '--out', out);
      const report = JSON.parse(v.stdout) as { verdict: { pass: boolean; facts: { fact: string; seen: string; pass: boolean }[] } };
      assert.equal(v.code, 0, JSON.stringify(report.verdict.facts, null, 1));
      assert.equal(report.verdict.pass, true);
      assert.ok(report.verdict.facts.some((f) => /completes after it/.test(f.fact) && f.pass));
      assert.ok(report.verdict.facts.some((f) => /same real server/.test(f.fact) && f.pass));
      assert.ok(report.verdict.facts.some((f) => /same Maglev table size and seed/.test(f.fact) && f.pass));
      // verify recovered the balancer it failed.
      assert.deepEqual(await waitForHops([LB, LB2], 20_000), [LB, LB2]);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });

  it('withdraws the VIP while every real server fails its checks, and announces it again when they pass', async () => {
    const status = async () => (await run([process.execPath, CLI_ENTRY, 'status'], { netns: nsName(lab, 'lb') })).stdout;
    assert.match(await status(), /^bgp: announcing 172\.16\.75\.84 to 172\.16\.75\.1 AS 65000 \(Established\)$/m);
    await blockRealServers(true);
    try {
      assert.deepEqual(await waitForHops([], 30_000), [], 'both balancers withdraw');
      await new Promise((r) => setTimeout(r, 1500)); // the status record is written at the end of the controller's reconcile
      assert.match(await status(), /^bgp: announcing nothing/m);
    } finally {
      await blockRealServers(false);
    }
    assert.deepEqual(await waitForHops([LB, LB2], 30_000), [LB, LB2]);
    const log = fs.readFileSync(path.join('/run/slbctl/lab', lab, 'lb-run.log'), 'utf8');
    assert.match(log, /"event":"bgp","msg":"withdrawing 172\.16\.75\.84"/);
  });

  it('lab fail takes a balancer out of the route (BFD), lab recover brings it back, traffic flows throughout', async () => {
    const fail = await slbctl('lab', 'fail', 'lb2', '--name', lab);
    assert.equal(fail.code, 0, fail.stderr);
    assert.deepEqual(await waitForHops([LB], 10_000), [LB]);
    for (let i = 0; i < 4; i++) {
      const r = await run(['curl', '-s', '--max-time', '3', `http://${vip}/`], { netns: nsName(lab, 'client') });
      assert.equal(r.code, 0, r.stderr);
    }
    const refused = await slbctl('lab', 'verify', '--name', lab);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /lab recover lb2/);
    const recover = await slbctl('lab', 'recover', 'lb2', '--name', lab);
    assert.equal(recover.code, 0, recover.stderr + recover.stdout);
    assert.deepEqual(await routerNextHops(lab, vip), [LB, LB2]);
  });

  it('a balancer with another Maglev seed: the router sees it in the communities and verify fails that fact', async () => {
    const dir = path.join('/run/slbctl/lab', lab);
    const file = path.join(dir, 'lb-dsr.yaml');
    const other = path.join(dir, 'lb2-other-seed.yaml');
    fs.writeFileSync(other, fs.readFileSync(file, 'utf8').replace(/^( +)scheduler: mh$/m, '$1scheduler: mh\n$1maglev: {seed: 7}'));
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-ecmp-'));
    try {
      await stopLabController(lab, 'lb2');
      await startLabController(lab, 'lb2', other);
      const until = Date.now() + 20_000;
      let routes = '';
      while (Date.now() < until && !/\(65001, 1021, 7\)/.test(routes)) {
        routes = (await run(['birdc', '-s', path.join(dir, 'router-bird.ctl'), 'show', 'route', `${vip}/32`, 'all'])).stdout;
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.match(routes, /BGP\.large_community: \(65001, 1021, 1307\)[\s\S]*BGP\.large_community: \(65001, 1021, 7\)/);
      // Each controller sees it too (before verify: its failover phase may recover lb2, with the lab's own seed), from the other's route over their iBGP session (ha.bgp.balancers): status and log.
      const said = `balancer ${LB2} announces ${vip} with size 1021 seed 7, this balancer with size 1021 seed 1307: the two would send one flow to different real servers`;
      let status = '';
      const since = Date.now();
      for (const until = since + 20_000; Date.now() < until && !status.includes(said);) {
        status = (await run([process.execPath, CLI_ENTRY, 'status'], { netns: nsName(lab, 'lb') })).stdout;
        if (!status.includes(said)) await new Promise((r) => setTimeout(r, 300));
      }
      process.stdout.write(`# ecmp: lb's status named lb2's other seed ${Date.now() - since} ms after the router saw it\n`);
      if (!status.includes(`MAGLEV DISAGREEMENT: ${said}`)) {
        // What lb's BIRD holds of its session with lb2 and of lb2's routes, for the failure message.
        const inode = fs.statSync(`/run/netns/${nsName(lab, 'lb')}`).ino;
        const socket = `/run/slbctl/bird/net-${inode}/bird.ctl`;
        const bird = await run(['sh', '-c', 'birdc -s "$0" show protocols all balancer0; birdc -s "$0" show route all', socket], {
          netns: nsName(lab, 'lb'),
        });
        const bgpLog = fs
          .readFileSync(path.join(dir, 'lb-run.log'), 'utf8')
          .split('\n')
          .filter((l) => l.includes('"event":"bgp"'))
          .slice(-10);
        assert.fail(
          `lb's status does not name the disagreement after 20 s:\n${status}\n${bird.stdout}${bird.stderr}\n${bgpLog.join('\n')}`,
        );
      }
      assert.ok(fs.readFileSync(path.join(dir, 'lb-run.log'), 'utf8').includes(said));
      const v = await slbctl('lab', 'verify', '--name', lab, '--json', '--out', out);
      assert.notEqual(v.code, 0);
      const report = JSON.parse(v.stdout) as { verdict: { facts: { fact: string; pass: boolean; why?: string }[] } };
      const fact = report.verdict.facts.find((f) => /same Maglev table size and seed/.test(f.fact));
      assert.equal(fact?.pass, false);
      assert.equal(
        fact?.why,
        `lb2 announces ${vip} with Maglev size 1021 seed 7, but lb uses size 1021 seed 1307: they send one flow to different real servers`,
      );
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
      await stopLabController(lab, 'lb2');
      await startLabController(lab, 'lb2', file);
    }
    assert.deepEqual(await waitForHops([LB, LB2], 30_000), [LB, LB2]);
  });

  it('a controller that stops withdraws its VIP (BGP Cease), and a mode without --ha leaves lb alone serving', async () => {
    const plain = await slbctl('lab', 'mode', 'dsr', '--name', lab);
    assert.equal(plain.code, 0, plain.stderr + plain.stdout);
    assert.deepEqual(await routerNextHops(lab, vip), []);
    const status = await run([process.execPath, CLI_ENTRY, 'status'], { netns: nsName(lab, 'lb2') });
    assert.doesNotMatch(status.stdout, /172\.16\.75\.84/);
    const v = await slbctl('lab', 'verify', '--name', lab);
    assert.equal(v.code, 0, v.stdout + v.stderr);
  });
});
