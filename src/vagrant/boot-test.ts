// The box builder's boot test (scripts/vagrant-box runs it before `vagrant
// box add`): boots the finished image once under QEMU's software emulation
// the way the lab's VMs boot it (SeaBIOS, virtio disk, CPU qemu64), with no
// network and -snapshot so the image stays exactly as built, and waits for
// the box's ready marker on the serial console. Prints one sentence; exit 0
// when the box booted, 1 when it did not.
//
//   node dist/src/vagrant/boot-test.js IMAGE CONSOLE_LOG [TIMEOUT_SECONDS]
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { READY_MARKER, lastConsoleLine, quoteLastLine } from './console';
import { watchConsoles } from './console-watch';

export interface BootTestResult {
  booted: boolean;
  sentence: string;
}

export function qemuBootArgv(image: string, consoleLog: string): string[] {
  // In QEMU's option syntax a comma inside a value is written twice.
  const value = (s: string) => s.replace(/,/g, ',,');
  // graphics=off: SeaBIOS copies the VGA text to ttyS0, so a GRUB that
  // never read its grub.cfg (which sets the serial terminal) still shows
  // its prompt there, as on the lab's VMs (vagrant/Vagrantfile).
  return ['qemu-system-x86_64', '-name', 'slbctl-box-boot-test', '-machine', 'pc,accel=tcg,graphics=off', '-cpu', 'qemu64', '-m', '512', '-smp', '1',
    '-display', 'none', '-vga', 'none', '-monitor', 'none', '-serial', `file:${value(consoleLog)}`, '-nic', 'none', '-no-reboot', '-snapshot',
    '-drive', `file=${value(image)},format=qcow2,if=virtio`];
}

export function bootTest(image: string, consoleLog: string, timeoutMs: number, signal?: AbortSignal): Promise<BootTestResult> {
  const started = Date.now();
  const seconds = () => `${Math.round((Date.now() - started) / 1000)} s`;
  const lastLine = () => quoteLastLine(lastConsoleLine(fs.existsSync(consoleLog) ? fs.readFileSync(consoleLog, 'utf8') : ''));
  const [cmd, ...args] = qemuBootArgv(image, consoleLog) as [string, ...string[]];
  const qemu = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], ...(signal ? { signal } : {}) });
  let stderr = '';
  qemu.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  return new Promise((resolve) => {
    let settled = false;
    const settle = (result: BootTestResult) => {
      if (settled) return;
      settled = true;
      stop();
      clearTimeout(timer);
      if (qemu.exitCode === null && qemu.signalCode === null) {
        // SIGTERM ends QEMU at once; the snapshot overlay is discarded.
        qemu.kill('SIGTERM');
        const kill = setTimeout(() => qemu.kill('SIGKILL'), 5000);
        qemu.once('exit', () => {
          clearTimeout(kill);
          resolve(result);
        });
      } else resolve(result);
    };
    const stop = watchConsoles([{ vm: 'box', path: consoleLog }], (_log, verdict) => {
      if (verdict.state === 'up') settle({ booted: true, sentence: `the box booted to ${READY_MARKER} in ${seconds()} under QEMU (software emulation)` });
      else settle({ booted: false, sentence: `the box does not boot: stuck ${verdict.reason} after ${seconds()}; ${quoteLastLine(verdict.lastLine)} (console log ${consoleLog})` });
    }, { booted: new RegExp(READY_MARKER), pollMs: 2000 });
    const timer = setTimeout(() => settle({ booted: false, sentence: `the box did not print ${READY_MARKER} within ${seconds()}; ${lastLine()} (console log ${consoleLog})` }), timeoutMs);
    qemu.once('error', (e) => settle({ booted: false, sentence: signal?.aborted ? `the boot test was interrupted after ${seconds()}` : `QEMU did not start: ${e.message}` }));
    qemu.once('exit', (code, sig) => {
      const why = stderr.trim().split('\n').at(-1) ?? '';
      settle({ booted: false, sentence: `QEMU exited (${sig ?? `code ${code}`}) after ${seconds()} before the box booted${why ? `: ${why}` : ''}; ${lastLine()} (console log ${consoleLog})` });
    });
  });
}

async function main(argv: string[]): Promise<number> {
  const [image, consoleLog, timeout] = argv;
  if (!image || !consoleLog) {
    process.stderr.write('usage: node dist/src/vagrant/boot-test.js IMAGE CONSOLE_LOG [TIMEOUT_SECONDS]\n');
    return 2;
  }
  const abort = new AbortController();
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(sig, () => abort.abort());
  fs.writeFileSync(consoleLog, '');
  const result = await bootTest(image, consoleLog, Number(timeout ?? 300) * 1000, abort.signal);
  process.stdout.write(`${result.sentence}\n`);
  return result.booted ? 0 : 1;
}

if (require.main === module) void main(process.argv.slice(2)).then((code) => (process.exitCode = code));
