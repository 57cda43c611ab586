// `lab up --provider vagrant` for real: the host's packages and libvirtd
// (scripts/vagrant-host-setup.sh), the offline Debian 12 box
// (scripts/vagrant-box), four VMs under QEMU, every mode applied on IPVS in
// the lb VM and verified by capture on the VMs, then everything torn down:
// VMs, libvirt networks and disks, the daemons this test started, and the
// box if this test built it. 6 to 8 minutes here; 20 at most.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CLI_ENTRY } from '../../src/util/self';
import { run } from '../../src/util/exec';
import { LOCAL_BOX, libvirtLeftovers, vagrantLab } from '../../src/vagrant/lab';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const ROOT = path.join(__dirname, '..', '..', '..');
const lab = `vg${process.pid % 10000}`;
const DAEMONS = '/run/slbctl/vagrant/daemons';
const slbctl = (...args: string[]) => run([process.execPath, CLI_ENTRY, ...args], { timeoutMs: 15 * 60 * 1000 });
const log = (line: string) => process.stdout.write(`# vagrant lab: ${line}\n`);
const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(0)} s`;
const recordedDaemons = () => (fs.existsSync(DAEMONS) ? fs.readdirSync(DAEMONS).filter((f) => f.endsWith('.pid')) : []);

describe('lab on Vagrant VMs (libvirt, QEMU)', { skip: isRoot ? false : 'needs root', timeout: 20 * 60 * 1000 }, () => {
  let startedDaemons = false;
  let builtBox = false;

  before(async () => {
    const daemonsBefore = recordedDaemons().length;
    const setup = await run(['bash', path.join(ROOT, 'scripts', 'vagrant-host-setup.sh')], { timeoutMs: 10 * 60 * 1000 });
    startedDaemons = daemonsBefore === 0 && recordedDaemons().length > 0;
    assert.equal(setup.code, 0, setup.stdout + setup.stderr);
  });

  after(async () => {
    if (vagrantLab(lab)) await slbctl('lab', 'down', '--name', lab);
    if (builtBox) {
      await run(['vagrant', 'box', 'remove', '--force', '--provider', 'libvirt', LOCAL_BOX]);
      const vols = await run(['virsh', '-c', 'qemu:///system', 'vol-list', 'slbctl']);
      for (const v of vols.stdout
        .split('\n')
        .map((l) => l.trim().split(/\s+/)[0] ?? '')
        .filter((n) => n.startsWith('slbctl-VAGRANTSLASH-debian12_'))) {
        await run(['virsh', '-c', 'qemu:///system', 'vol-delete', '--pool', 'slbctl', v]);
      }
    }
    if (startedDaemons) await run(['bash', path.join(ROOT, 'scripts', 'vagrant-host-setup.sh'), '--stop']);
  });

  it('box, vagrant up, fullnat / transparent / dsr verified by capture on IPVS, down', async () => {
    const total = Date.now();
    const boxes = await run(['vagrant', 'box', 'list']);
    if (!boxes.stdout.split('\n').some((l) => l.startsWith(`${LOCAL_BOX} `))) {
      const t = Date.now();
      const box = await run(['bash', path.join(ROOT, 'scripts', 'vagrant-box')], { timeoutMs: 10 * 60 * 1000 });
      assert.equal(box.code, 0, box.stdout + box.stderr);
      builtBox = true;
      log(`box ${LOCAL_BOX} built in ${seconds(t)}`);
    } else log(`box ${LOCAL_BOX} reused`);

    let t = Date.now();
    const up = await slbctl('lab', 'up', '--provider', 'vagrant', '--box', LOCAL_BOX, '--name', lab);
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
      for (const mode of ['fullnat', 'transparent', 'dsr']) {
        t = Date.now();
        const applied = await slbctl('lab', 'mode', mode, '--name', lab);
        assert.equal(applied.code, 0, applied.stdout + applied.stderr);
        assert.match(applied.stdout, /backend: ipvs/, 'IPVS is the default backend on the VMs');
        const verify = await slbctl('lab', 'verify', '--name', lab, '--requests', '8', '--out', path.join(out, mode));
        log(`${mode}: ${/verdict: \S+ \S+/.exec(verify.stdout)?.[0] ?? 'no verdict'} (mode + verify ${seconds(t)})`);
        assert.equal(verify.code, 0, verify.stdout + verify.stderr);
        assert.match(verify.stdout, new RegExp(`verdict: PASS: ${mode}`));
        for (const host of ['client', 'lb', 'rs1', 'rs2'])
          assert.ok(fs.statSync(path.join(out, mode, `${host}.pcap`)).size > 24, `${mode}: ${host}.pcap is on the host`);
      }
      const ipvsadm = await slbctl('lab', 'exec', '--name', lab, 'lb', '--', 'ipvsadm', '-Ln');
      assert.equal(ipvsadm.code, 0, ipvsadm.stdout + ipvsadm.stderr);
      assert.match(ipvsadm.stdout, /-> 172\.16\.75\.82:80 +Route +1/);
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
});
