// What a VM's serial console says about its boot, as a pure function of the
// console's text and how long it has been silent. `lab up` reads each VM's
// console log (the Vagrantfile logs ttyS0 to a file) and the box builder's
// boot test (boot-test.ts) reads QEMU's, so a VM stuck at GRUB's prompt, in a
// kernel panic or silent is named within a minute, not after vagrant's 900 s
// boot timeout.

/** Printed on ttyS0 by the box's slbctl-box-ready.service once multi-user.target is reached (scripts/vagrant-box). */
export const READY_MARKER = 'SLBCTL-BOX-READY';
/**
 * The box's kernel is not `quiet`, so a booting VM prints every few seconds
 * even under emulation (at most 19 s apart with four VMs on a busy 2-core
 * host), except right after GRUB's last line: the kernel decompresses
 * itself before it can print, which took 55 to 80 s there. That handover
 * gets three times the limit.
 */
export const SILENCE_LIMIT_MS = 60_000;
const GRUB_HANDOVER = /^Loading (Linux \S+|initial ramdisk) \.\.\.$/;

/** Booted: the box's marker, or any getty login prompt (a public box has no marker). */
export const BOOTED = new RegExp(`${READY_MARKER}|^\\S+ login:`, 'm');

export type BootState =
  | { state: 'booting' }
  | { state: 'up' }
  | { state: 'stuck'; reason: string; lastLine: string };

/**
 * The console's text as lines a person would read: terminal escape
 * sequences (GRUB draws its screen with them) and other control characters
 * removed, a lone carriage return taken as a line break, trailing blanks cut.
 */
// Control characters are what this removes: terminal escapes and stray control bytes from a VM's console.
/* eslint-disable no-control-regex */
export function consoleLines(raw: string): string[] {
  return raw
    .replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, '')
    .replace(/\x1b[()#][0-9A-Za-z]|\x1b[=>78cDEHMZ]/g, '')
    .split(/\r\n|\r|\n/)
    .map((l) => l.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '').trimEnd());
}
/* eslint-enable no-control-regex */

export function lastConsoleLine(raw: string): string {
  return consoleLines(raw).filter((l) => l.trim() !== '').at(-1)?.trim() ?? '';
}

/** The last line as the end of a sentence about a stuck VM or box. */
export function quoteLastLine(lastLine: string): string {
  return lastLine === '' ? 'its console stayed empty' : `its console's last line: "${lastLine}"`;
}

/**
 * booting, up, or stuck with the reason and the console's last line.
 * `silentMs` is how long the console has not grown (counted from when the
 * VM started, while it has printed nothing); silence counts only before the
 * VM is up, since a booted VM prints nothing more.
 */
export function judgeConsole(raw: string, silentMs: number, booted: RegExp = BOOTED, silenceLimitMs = SILENCE_LIMIT_MS): BootState {
  const lines = consoleLines(raw);
  const lastLine = lastConsoleLine(raw);
  if (lines.some((l) => l.includes('Kernel panic - not syncing'))) return { state: 'stuck', reason: 'in a kernel panic', lastLine };
  // GRUB's prompts and the initramfs shell wait for a keyboard nobody has.
  if (/^grub( rescue)?>/.test(lastLine)) return { state: 'stuck', reason: "at GRUB's prompt", lastLine };
  if (/^\(initramfs\)/.test(lastLine)) return { state: 'stuck', reason: "in the initramfs' emergency shell", lastLine };
  if (booted.test(lines.join('\n'))) return { state: 'up' };
  const limit = GRUB_HANDOVER.test(lastLine) ? 3 * silenceLimitMs : silenceLimitMs;
  if (silentMs >= limit) return { state: 'stuck', reason: `with its console silent for ${Math.round(silentMs / 1000)} s`, lastLine };
  return { state: 'booting' };
}
