// `lab up --provider vagrant` for real: the host's packages and libvirtd
// (scripts/vagrant-host-setup.sh); the offline Debian 12 box
// (scripts/vagrant-box), built while other processes hold mount namespaces
// of their own (which made the old builder's boxes boot to `grub>`), then
// checked clean; a copy of it without grub.cfg, which the builder's boot
// test and `lab up` must both name as stuck at GRUB's prompt within a
// minute; then four VMs under QEMU, every L4 mode applied on IPVS in the lb
// VM, the L7 types (HAProxy) after them, each verified by capture on the
// VMs, and everything torn down: VMs, libvirt
// networks and disks, the boxes this test added, the daemons it started.
// 10 minutes in CI before the L7 types; 28 here with helpers and a second
// lab loading the 2 cores (box 7, the broken copy 1, four VMs up 12.5, five
// modes 6); 40 at most.
//
// With SLBCTL_VAGRANT_ECMP=1 it also builds the two-balancer lab (`lab up
// --balancers 2`: five VMs, BIRD on the router and both balancers), applies
// `lab mode dsr --ha ecmp` on IPVS mh, verifies the spread and a connection
// carried across `lab fail`, then fail and recover by hand. Off by default:
// it adds a second `vagrant up` (five VMs), longer than CI's budget allows.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CLI_ENTRY } from '../../src/util/self';
import { run, runChecked } from '../../src/util/exec';
import { libvirtLeftovers, vagrantLab } from '../../src/vagrant/lab';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const ROOT = path.join(__dirname, '..', '..', '..');
const lab = `vg${process.pid % 10000}`;
const brokenLab = `${lab}x`;
const ecmpLab = `${lab}e`;
const withEcmp = process.env.SLBCTL_VAGRANT_ECMP === '1';
// Boxes of this test alone, so a user's slbctl/debian12 (or another run's) is never touched.
const BOX = `slbctl-test-${lab}/debian12`;
const BROKEN_BOX = `slbctl-test-${lab}/broken`;
const DAEMONS = '/run/slbctl/vagrant/daemons';
const LIBVIRT = 'qemu:///system';
const slbctl = (...args: string[]) => run([process.execPath, CLI_ENTRY, ...args], { timeoutMs: 15 * 60 * 1000 });
const log = (line: string) => process.stdout.write(`# vagrant lab: ${line}\n`);
const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(0)} s`;
const recordedDaemons = () => (fs.existsSync(DAEMONS) ? fs.readdirSync(DAEMONS).filter((f) => f.endsWith('.pid')) : []);
const boxDir = (box: string) => box.replace(/\//g, '-VAGRANTSLASH-');
const boxImage = (box: string) =>
  path.join(process.env.VAGRANT_HOME ?? path.join(os.homedir(), '.vagrant.d'), 'boxes', boxDir(box), '0', 'libvirt', 'box.img');
// scripts/vagrant-box puts the one partition at sector 2048; e2fsprogs read it inside the raw image at that offset.
const partitionOf = (raw: string) => `${raw}?offset=${2048 * 512}`;
const alive = (p: ChildProcess) => p.exitCode === null && p.signalCode === null;

/** A process in a mount namespace of its own, as `ip netns exec` or a private-tmp service makes. */
function holdMountNamespace(holders: ChildProcess[]): void {
  holders.push(spawn('unshare', ['--mount', '--propagation', 'private', 'sleep', '1800'], { stdio: 'ignore' }));
}

/** The box builder, its stderr handed over line by line; in a process group of its own so a failed test can end all of it. */
function buildBox(box: string, onLine: (line: string) => void): { child: ChildProcess; done: Promise<{ code: number; output: string }> } {
  const child = spawn('bash', [path.join(ROOT, 'scripts', 'vagrant-box'), '--name', box, '--force'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  let partial = '';
  const take = (b: Buffer) => {
    output += b.toString();
    partial += b.toString();
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    lines.forEach(onLine);
  };
  child.stdout?.on('data', take);
  child.stderr?.on('data', take);
  const done = new Promise<{ code: number; output: string }>((resolve) =>
    child.once('close', (code) => resolve({ code: code ?? -1, output })),
  );
  return { child, done };
}

async function removeBox(box: string): Promise<void> {
  await run(['vagrant', 'box', 'remove', '--force', '--provider', 'libvirt', box]);
  const vols = await run(['virsh', '-c', LIBVIRT, 'vol-list', 'slbctl']);
  const prefix = `${boxDir(box)}_vagrant_box_image_`;
  for (const v of vols.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.startsWith(prefix))) {
    await run(['virsh', '-c', LIBVIRT, 'vol-delete', '--pool', 'slbctl', v]);
  }
}

describe('lab on Vagrant VMs (libvirt, QEMU)', { skip: isRoot ? false : 'needs root', timeout: (withEcmp ? 70 : 40) * 60 * 1000 }, () => {
  let startedDaemons = false;
  const holders: ChildProcess[] = [];
  let build: ChildProcess | undefined;
  let tmp = '';
  const brokenImage = () => path.join(tmp, 'broken.img');

  before(async () => {
    tmp = fs.mkdtempSync(path.join('/var/tmp', 'slbctl-vagrant-test-'));
    const daemonsBefore = recordedDaemons().length;
    // The host setup's own lines are logged whatever happens, so a CI log
    // shows which step failed or stalled; a failure is tried once more (a
    // mirror's hiccup), its first output kept in the assertion.
    const hostSetup = async () => {
      const t = Date.now();
      const r = await run(['bash', path.join(ROOT, 'scripts', 'vagrant-host-setup.sh')], { timeoutMs: 10 * 60 * 1000 });
      for (const line of r.stderr.trim().split('\n')) log(`host setup: ${line}`);
      log(`host setup exited ${r.signal ?? r.code} after ${seconds(t)}`);
      return r;
    };
    let setup = await hostSetup();
    const first = setup.code === 0 ? '' : `first try: ${setup.stdout}${setup.stderr}\n`;
    if (setup.code !== 0) setup = await hostSetup();
    startedDaemons = daemonsBefore === 0 && recordedDaemons().length > 0;
    assert.equal(setup.code, 0, first + setup.stdout + setup.stderr);
  });

  after(async () => {
    // A build still running (the test failed or timed out) ends with its
    // whole group; its own exit trap then detaches its loop device.
    if (build?.pid && alive(build)) {
      process.kill(-build.pid, 'SIGTERM');
      await new Promise((resolve) => build?.once('close', resolve));
    }
    for (const h of holders) if (alive(h)) h.kill('SIGKILL');
    for (const name of [lab, brokenLab, ecmpLab]) if (vagrantLab(name)) await slbctl('lab', 'down', '--name', name);
    for (const box of [BOX, BROKEN_BOX]) await removeBox(box);
    for (const f of fs.readdirSync('/var/tmp').filter((f) => f.startsWith(`slbctl-vagrant-${brokenLab}-`)))
      fs.rmSync(path.join('/var/tmp', f), { force: true });
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    if (startedDaemons) await run(['bash', path.join(ROOT, 'scripts', 'vagrant-host-setup.sh'), '--stop']);
  });

  it('box: built while other processes hold mount namespaces, clean, boots; a copy without grub.cfg fails the boot test', async () => {
    // One namespace made before the build, one while the build has its
    // filesystem mounted: the old builder's mount was copied into the
    // second, and its box booted to grub>.
    holdMountNamespace(holders);
    let t = Date.now();
    const building = buildBox(BOX, (line) => {
      if (/debootstrap bookworm/.test(line)) holdMountNamespace(holders);
    });
    build = building.child;
    const built = await building.done;
    assert.equal(built.code, 0, built.output);
    log(`box ${BOX} built in ${seconds(t)} (${/booted to SLBCTL-BOX-READY in \d+ s/.exec(built.output)?.[0] ?? 'no boot test'})`);
    assert.match(built.output, /filesystem clean/);
    assert.match(built.output, /the box booted to SLBCTL-BOX-READY/);
    assert.equal(holders.length, 2, 'a second namespace was made while the box was mounted');
    assert.ok(holders.every(alive), 'both namespaces were held through the build');

    // The box as vagrant has it: no journal left to replay, nothing wrong.
    const raw = path.join(tmp, 'box.raw');
    await runChecked('qemu-img convert to raw', ['qemu-img', 'convert', '-O', 'raw', boxImage(BOX), raw]);
    const header = await runChecked('dumpe2fs', ['dumpe2fs', '-h', partitionOf(raw)]);
    assert.doesNotMatch(header.stdout, /needs_recovery/);
    const fsck = await run(['e2fsck', '-fn', partitionOf(raw)]);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);

    // A copy without grub.cfg stops at GRUB's prompt; the builder's boot
    // test must refuse it and name that prompt.
    await runChecked('debugfs rm grub.cfg', ['debugfs', '-w', '-R', 'rm /boot/grub/grub.cfg', partitionOf(raw)]);
    await runChecked('qemu-img convert to qcow2', ['qemu-img', 'convert', '-O', 'qcow2', '-o', 'compat=0.10', raw, brokenImage()]);
    fs.rmSync(raw);
    t = Date.now();
    const boot = await run([
      process.execPath,
      path.join(ROOT, 'dist', 'src', 'vagrant', 'boot-test.js'),
      brokenImage(),
      path.join(tmp, 'broken-console.log'),
      '300',
    ]);
    log(`boot test of the copy without grub.cfg (${seconds(t)}): ${boot.stdout.trim()}`);
    assert.equal(boot.code, 1, boot.stdout + boot.stderr);
    assert.match(boot.stdout, /^the box does not boot: stuck at GRUB's prompt after \d+ s; its console's last line: "grub>"/);
  });

  it('lab up stops at a VM stuck at grub>, in one sentence naming it', async () => {
    assert.ok(fs.existsSync(brokenImage()), 'the broken copy of the box was made');
    fs.writeFileSync(path.join(tmp, 'metadata.json'), '{"provider":"libvirt","format":"qcow2","virtual_size":4}\n');
    fs.renameSync(brokenImage(), path.join(tmp, 'box.img'));
    await runChecked('tar the broken box', ['tar', '-C', tmp, '-cf', path.join(tmp, 'broken.box'), 'metadata.json', 'box.img']);
    fs.rmSync(path.join(tmp, 'box.img'));
    await runChecked(
      'vagrant box add',
      ['vagrant', 'box', 'add', '--force', '--name', BROKEN_BOX, '--provider', 'libvirt', path.join(tmp, 'broken.box')],
      { timeoutMs: 10 * 60 * 1000 },
    );
    fs.rmSync(path.join(tmp, 'broken.box'));

    const t = Date.now();
    const up = await slbctl('lab', 'up', '--provider', 'vagrant', '--box', BROKEN_BOX, '--name', brokenLab);
    const sentence = up.stderr.trim();
    log(`lab up on the broken box stopped in ${seconds(t)}: ${sentence}`);
    assert.equal(up.code, 5, up.stdout + up.stderr);
    assert.equal(sentence.split('\n').length, 1, 'one sentence');
    assert.match(
      sentence,
      new RegExp(
        `^slbctl: VM (client|lb|rs1|rs2) \\(slbctl-${brokenLab}-\\1\\) is stuck at GRUB's prompt; its console's last line: "grub>"`,
      ),
    );
    assert.doesNotMatch(sentence, /\.rb:\d+/, 'no Ruby backtrace');
    assert.equal(vagrantLab(brokenLab), undefined);
    assert.deepEqual(await libvirtLeftovers(brokenLab), { domains: [], networks: [], volumes: [] }, 'the stuck lab is removed');
    await removeBox(BROKEN_BOX);
  });

  it('vagrant up, fullnat / transparent / dsr on IPVS and the L7 types on HAProxy, verified by capture, down', async () => {
    const total = Date.now();
    let t = Date.now();
    const up = await slbctl('lab', 'up', '--provider', 'vagrant', '--box', BOX, '--name', lab);
    assert.equal(up.code, 0, up.stdout + up.stderr);
    log(`lab up (vagrant up of four VMs, provisioning) in ${seconds(t)}`);
    const mem = await run(['free', '-m']);
    log(`memory in use with the VMs up: ${/Mem:\s+\d+\s+(\d+)/.exec(mem.stdout)?.[1] ?? '?'} MiB`);

    // The lab's addresses exist only inside the VMs, never on this host.
    const hostAddresses = await run(['ip', '-4', 'addr']);
    assert.doesNotMatch(hostAddresses.stdout, /10\.8\.21\.|172\.16\.75\./);
    const hostRoutes = await run(['ip', '-4', 'route']);
    assert.doesNotMatch(hostRoutes.stdout, /10\.8\.21\.|172\.16\.75\./);

    const out = fs.mkdtempSync(path.join('/var/tmp', 'slbctl-vagrant-pcaps-'));
    try {
      // The L4 modes on IPVS, then the L7 types (HAProxy in the lb VM):
      // the reverse proxy with its cache, and transparent over https.
      const runs: { mode: string; flags: string[]; title: RegExp }[] = [
        { mode: 'fullnat', flags: [], title: /full NAT/ },
        { mode: 'transparent', flags: [], title: /transparent/ },
        { mode: 'dsr', flags: [], title: /direct server return/ },
        { mode: 'fullnat', flags: ['--protocol', 'http', '--cache'], title: /L7 reverse proxy \(http, cache\)/ },
        { mode: 'transparent', flags: ['--protocol', 'https'], title: /L7 transparent \(https\)/ },
      ];
      for (const { mode, flags, title } of runs) {
        const name = [mode, ...flags].join(' ');
        const dir = path.join(out, `${mode}${flags.length ? '-l7' : ''}`);
        t = Date.now();
        const applied = await slbctl('lab', 'mode', mode, ...flags, '--name', lab);
        assert.equal(applied.code, 0, applied.stdout + applied.stderr);
        if (flags.length === 0) assert.match(applied.stdout, /backend: ipvs/, 'IPVS is the default backend on the VMs');
        const verify = await slbctl('lab', 'verify', '--name', lab, '--requests', '8', '--out', dir);
        log(`${name}: ${/verdict: \S+ \S+/.exec(verify.stdout)?.[0] ?? 'no verdict'} (mode + verify ${seconds(t)})`);
        assert.equal(verify.code, 0, verify.stdout + verify.stderr);
        assert.match(verify.stdout, new RegExp(`verdict: PASS: ${mode} \\(`));
        assert.match(verify.stdout, title);
        if (flags.length) {
          for (const l7 of ["answers the client's SYN itself", 'every RS-side SYN comes after', 'a TCP connection of its own'])
            assert.ok(verify.stdout.includes(l7), `${name}: verify judged the L7 fact "${l7}"`);
          if (flags.includes('--cache')) assert.match(verify.stdout, /L7 cache:/);
        } else assert.match(verify.stdout, /L4: each RS's SYN is the client's SYN forwarded|direct server return/);
        for (const host of ['client', 'lb', 'rs1', 'rs2'])
          assert.ok(fs.statSync(path.join(dir, `${host}.pcap`)).size > 24, `${name}: ${host}.pcap is on the host`);
        if (mode === 'dsr') {
          const ipvsadm = await slbctl('lab', 'exec', '--name', lab, 'lb', '--', 'ipvsadm', '-Ln');
          assert.equal(ipvsadm.code, 0, ipvsadm.stdout + ipvsadm.stderr);
          assert.match(ipvsadm.stdout, /-> 172\.16\.75\.82:80 +Route +1/);
        }
      }
      // The L7 types replaced the L4 service: IPVS has none left, HAProxy serves.
      const ipvsadm = await slbctl('lab', 'exec', '--name', lab, 'lb', '--', 'ipvsadm', '-Ln');
      assert.doesNotMatch(ipvsadm.stdout, /172\.16\.75\.84/);
      const status = await slbctl('lab', 'exec', '--name', lab, 'lb', '--', 'slbctl', 'status');
      assert.equal(status.code, 0, status.stdout + status.stderr);
      assert.match(status.stdout, /L7 \(HAProxy, runtime API\)/);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }

    t = Date.now();
    const down = await slbctl('lab', 'down', '--name', lab);
    assert.equal(down.code, 0, down.stdout + down.stderr);
    log(`lab down in ${seconds(t)}; whole test ${seconds(total)}`);
    assert.equal(vagrantLab(lab), undefined);
    const left = await libvirtLeftovers(lab);
    assert.deepEqual(left, { domains: [], networks: [], volumes: [] }, 'no VM, network or disk of the lab is left in libvirt');
  });
  it(
    'two balancers (SLBCTL_VAGRANT_ECMP=1): five VMs, dsr --ha ecmp on IPVS mh, verify with failover, fail and recover, down',
    { skip: withEcmp ? false : 'set SLBCTL_VAGRANT_ECMP=1 (a second vagrant up, of five VMs)' },
    async () => {
      const total = Date.now();
      let t = Date.now();
      const up = await slbctl('lab', 'up', '--provider', 'vagrant', '--balancers', '2', '--box', BOX, '--name', ecmpLab);
      assert.equal(up.code, 0, up.stdout + up.stderr);
      log(`lab up --balancers 2 (vagrant up of five VMs, provisioning) in ${seconds(t)}`);
      assert.match(up.stdout, /lb2 VM = the second balancer/);
      const mem = await run(['free', '-m']);
      log(`memory in use with the five VMs up: ${/Mem:\s+\d+\s+(\d+)/.exec(mem.stdout)?.[1] ?? '?'} MiB`);
      const hostRoutes = await run(['ip', '-4', 'route']);
      assert.doesNotMatch(hostRoutes.stdout, /10\.8\.21\.|172\.16\.75\./);

      t = Date.now();
      const mode = await slbctl('lab', 'mode', 'dsr', '--ha', 'ecmp', '--name', ecmpLab);
      assert.equal(mode.code, 0, mode.stdout + mode.stderr);
      log(`mode dsr --ha ecmp in ${seconds(t)}`);
      assert.match(mode.stdout, /172\.16\.75\.84 via 172\.16\.75\.83 and 172\.16\.75\.86 \(ECMP, L4 hash/);
      for (const b of ['lb', 'lb2']) {
        const ipvsadm = await slbctl('lab', 'exec', '--name', ecmpLab, b, '--', 'ipvsadm', '-Ln');
        assert.equal(ipvsadm.code, 0, ipvsadm.stdout + ipvsadm.stderr);
        assert.match(ipvsadm.stdout, /TCP +172\.16\.75\.84:80 mh \(mh-port\)/, `${b}: ${ipvsadm.stdout}`);
      }

      const out = fs.mkdtempSync(path.join('/var/tmp', 'slbctl-vagrant-ecmp-'));
      try {
        t = Date.now();
        const verify = await slbctl('lab', 'verify', '--name', ecmpLab, '--requests', '16', '--out', out);
        for (const line of verify.stdout.split('\n').filter((l) => /verdict|pass|FAIL/.test(l))) log(`ecmp verify: ${line.trim()}`);
        log(`ecmp verify in ${seconds(t)}`);
        assert.equal(verify.code, 0, verify.stdout + verify.stderr);
        assert.match(verify.stdout, /verdict: PASS: dsr/);
        assert.match(verify.stdout, /the router sends flows to both/);
        assert.match(verify.stdout, /completes after it .* pass/);
        assert.match(verify.stdout, /same real server .* pass/);
        for (const pcap of ['both-up/router.pcap', 'both-up/lb2.pcap', 'failover/rs1.pcap'])
          assert.ok(fs.statSync(path.join(out, pcap)).size > 24, `${pcap} is on the host`);
      } finally {
        fs.rmSync(out, { recursive: true, force: true });
      }

      t = Date.now();
      const fail = await slbctl('lab', 'fail', 'lb2', '--name', ecmpLab);
      assert.equal(fail.code, 0, fail.stdout + fail.stderr);
      for (let i = 0; i < 30; i++) {
        const r = await slbctl('lab', 'exec', '--name', ecmpLab, 'router', '--', 'ip', 'route', 'show', '172.16.75.84');
        if (!/172\.16\.75\.86/.test(r.stdout)) break;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      const routes = await slbctl('lab', 'exec', '--name', ecmpLab, 'router', '--', 'ip', 'route', 'show', '172.16.75.84');
      assert.doesNotMatch(routes.stdout, /172\.16\.75\.86/, routes.stdout);
      const curl = await slbctl('lab', 'exec', '--name', ecmpLab, 'client', '--', 'curl', '-s', '--max-time', '5', 'http://172.16.75.84/');
      assert.equal(curl.code, 0, `the survivor serves: ${curl.stdout}`);
      const recover = await slbctl('lab', 'recover', 'lb2', '--name', ecmpLab);
      assert.equal(recover.code, 0, recover.stdout + recover.stderr);
      assert.match(recover.stdout, /172\.16\.75\.84 via 172\.16\.75\.83 and 172\.16\.75\.86/, recover.stdout);
      log(`fail and recover lb2 in ${seconds(t)}`);

      t = Date.now();
      const down = await slbctl('lab', 'down', '--name', ecmpLab);
      assert.equal(down.code, 0, down.stdout + down.stderr);
      log(`lab down in ${seconds(t)}; two-balancer case ${seconds(total)}`);
      assert.deepEqual(await libvirtLeftovers(ecmpLab), { domains: [], networks: [], volumes: [] });
    },
  );
});
