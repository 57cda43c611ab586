// Stuck-VM detection on a serial console (src/vagrant/console.ts) and the
// one line lab up keeps of a failed vagrant up (src/vagrant/vagrant-output.ts).
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { READY_MARKER, SILENCE_LIMIT_MS, judgeConsole, lastConsoleLine, quoteLastLine } from '../../src/vagrant/console';
import { silenceLimitMs } from '../../src/vagrant/console-watch';
import { vagrantErrorLine } from '../../src/vagrant/vagrant-output';

// GRUB draws on the serial line with terminal escapes and bare carriage returns.
const GRUB_BOOTING =
  "\x1b[H\x1b[J\x1b[1;1H\x1b[H\x1b[J\x1b[1;1H  Booting `Debian GNU/Linux'\n\r\n\rLoading Linux 6.1.0-50-amd64 ...\n\rLoading initial ramdisk ...\n\r";
const KERNEL =
  '[    0.000000] Linux version 6.1.0-50-amd64 (debian-kernel@lists.debian.org)\r\n[    2.417310] Run /init as init process\r\n';
const LOGIN = '\r\r\nDebian GNU/Linux 12 debian12 ttyS0\r\n\r\ndebian12 login: ';
const second = 1000;

describe('judgeConsole', () => {
  it('GRUB prompt: stuck at once, with the prompt as the last line', () => {
    // Captured from a box whose grub.cfg was still in the journal, SeaBIOS
    // mirroring the VGA text to ttyS0 (QEMU's -machine graphics=off).
    const grub =
      '\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16.2-debian-1.16.2-1)\r\nBooting from Hard Disk...\r\nGRUB loading.\r\n\x1b[0;30;47mWelcome to GRUB!\r\n\n' +
      '\x1b[01;01H\x1b[0m\x1b[2J\x1b[02;24HGNU GRUB  version 2.06-13+\x1b[02;49H\x1b[02;50Hdeb12u2\r\n\n   Minimal BASH-like line editing is supported. For the firs\x1b[04;60H\x1b[04;61Ht word, TAB   \r\n' +
      '   lists possible command completions. Anywhere else TAB lists possible   \r\n   device or file completions.                   \x1b[06;49H\x1b[06;50H                         \r\n\n\ngrub> ';
    assert.deepEqual(judgeConsole(grub, 0), { state: 'stuck', reason: "at GRUB's prompt", lastLine: 'grub>' });
    assert.equal(judgeConsole('error: unknown filesystem.\r\nEntering rescue mode...\r\ngrub rescue> ', 0).state, 'stuck');
  });

  it('kernel panic: stuck, even though lines follow the panic', () => {
    const panic = `${GRUB_BOOTING}${KERNEL}[    3.1] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\r\n[    3.2] ---[ end Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0) ]---\r\n`;
    const v = judgeConsole(panic, 0);
    assert.equal(v.state, 'stuck');
    assert.ok(v.state === 'stuck' && v.reason === 'in a kernel panic' && v.lastLine.startsWith('[    3.2] ---[ end Kernel panic'));
  });

  it("initramfs' emergency shell: stuck", () => {
    const shell = `${KERNEL}Gave up waiting for root file system device.\r\nALERT!  UUID=0f3e does not exist.  Dropping to a shell!\r\n\r\n\r\nBusyBox v1.35.0 (Debian 1:1.35.0-4+b3) built-in shell (ash)\r\n(initramfs) `;
    assert.deepEqual(judgeConsole(shell, 0), { state: 'stuck', reason: "in the initramfs' emergency shell", lastLine: '(initramfs)' });
  });

  it('silence: booting until a minute without output, then stuck with the last line', () => {
    const text = `${GRUB_BOOTING}${KERNEL}`;
    assert.deepEqual(judgeConsole(text, SILENCE_LIMIT_MS - second), { state: 'booting' });
    assert.deepEqual(judgeConsole(text, SILENCE_LIMIT_MS + 5 * second), {
      state: 'stuck',
      reason: 'with its console silent for 65 s',
      lastLine: '[    2.417310] Run /init as init process',
    });
    assert.deepEqual(judgeConsole('', 70 * second), { state: 'stuck', reason: 'with its console silent for 70 s', lastLine: '' });
  });

  it('silence after GRUB hands over to the kernel (which decompresses itself silently): three times as long', () => {
    assert.deepEqual(judgeConsole(GRUB_BOOTING, 2 * SILENCE_LIMIT_MS), { state: 'booting' });
    assert.deepEqual(judgeConsole(GRUB_BOOTING, 3 * SILENCE_LIMIT_MS), {
      state: 'stuck',
      reason: 'with its console silent for 180 s',
      lastLine: 'Loading initial ramdisk ...',
    });
  });

  it('normal boot: booting, then up at the login prompt or the box marker, and silence after that is fine', () => {
    assert.deepEqual(judgeConsole(GRUB_BOOTING, 2 * second), { state: 'booting' });
    assert.deepEqual(judgeConsole(`${GRUB_BOOTING}${KERNEL}`, 0), { state: 'booting' });
    assert.deepEqual(judgeConsole(`${GRUB_BOOTING}${KERNEL}${LOGIN}`, 10 * 60 * second), { state: 'up' });
    assert.deepEqual(judgeConsole(`${GRUB_BOOTING}${KERNEL}${READY_MARKER}\r\n`, 10 * 60 * second), { state: 'up' });
    // As captured: the marker lands on the prompt's line, and kernel lines may follow it.
    assert.deepEqual(
      judgeConsole(
        `${KERNEL}debian12 login: ${READY_MARKER}\r\n[  435.803390] ipip: IPv4 and MPLS over IPv4 tunneling driver\r\n`,
        10 * 60 * second,
      ),
      { state: 'up' },
    );
    assert.deepEqual(judgeConsole(`${KERNEL}${LOGIN}[  435.803390] ipip: IPv4 and MPLS over IPv4 tunneling driver\r\n`, 10 * 60 * second), {
      state: 'up',
    });
  });

  it('the boot test can ask for the marker alone', () => {
    const marker = new RegExp(READY_MARKER);
    assert.deepEqual(judgeConsole(`${KERNEL}${LOGIN}`, second, marker), { state: 'booting' });
    assert.deepEqual(judgeConsole(`${KERNEL}${LOGIN}${READY_MARKER}\r\n`, second, marker), { state: 'up' });
  });

  it('last line: escapes, carriage returns and trailing blanks removed; quoted for a sentence', () => {
    assert.equal(lastConsoleLine(GRUB_BOOTING), 'Loading initial ramdisk ...');
    assert.equal(lastConsoleLine(LOGIN), 'debian12 login:');
    assert.equal(lastConsoleLine(''), '');
    assert.equal(quoteLastLine('grub>'), 'its console\'s last line: "grub>"');
    assert.equal(quoteLastLine(''), 'its console stayed empty');
  });
});

describe('silenceLimitMs', () => {
  it('SLBCTL_CONSOLE_SILENCE_S in seconds, else the default', () => {
    assert.equal(silenceLimitMs({ SLBCTL_CONSOLE_SILENCE_S: '300' }), 300_000);
    for (const bad of [undefined, '', '0', '-5', 'soon']) assert.equal(silenceLimitMs({ SLBCTL_CONSOLE_SILENCE_S: bad }), SILENCE_LIMIT_MS);
  });
});

describe('vagrantErrorLine', () => {
  it('a Ruby exception: its message, never the backtrace', () => {
    const out = [
      '==> lb: Waiting for domain to get an IP address...',
      "/usr/share/rubygems-integration/all/gems/fog-core-2.3.0/lib/fog/core/wait_for.rb:9:in `wait_for': The specified wait_for timeout (900 seconds) was exceeded (Fog::Errors::TimeoutError)",
      "\tfrom /usr/share/rubygems-integration/all/gems/vagrant-libvirt-0.11.2/lib/vagrant-libvirt/action/wait_till_up.rb:54:in `block (2 levels) in call'",
      "\tfrom /usr/lib/ruby/vendor_ruby/vagrant/util/retryable.rb:17:in `retryable'",
    ].join('\n');
    assert.equal(
      vagrantErrorLine(out),
      'vagrant raised The specified wait_for timeout (900 seconds) was exceeded (Fog::Errors::TimeoutError)',
    );
  });

  it("vagrant's own error: its first paragraph after the progress lines", () => {
    const out = [
      '==> rs1: Starting domain.',
      '    rs1: SSH address: 192.168.217.12:22',
      'Timed out while waiting for the machine to boot. This means that',
      'Vagrant was unable to communicate with the guest machine within',
      'the configured ("config.vm.boot_timeout" value) time period.',
      '',
      'If you look above, you should be able to see the error(s) that',
      'Vagrant had when attempting to connect to the machine.',
    ].join('\n');
    assert.equal(
      vagrantErrorLine(out),
      'Timed out while waiting for the machine to boot. This means that Vagrant was unable to communicate with the guest machine within the configured ("config.vm.boot_timeout" value) time period.',
    );
  });

  it('nothing after the progress lines', () => {
    assert.equal(vagrantErrorLine('==> lb: Creating image (snapshot of base box volume).\n'), 'vagrant printed no error message');
  });
});
