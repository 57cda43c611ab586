// Reads VM console logs every few seconds and hands each one's state
// (console.ts) to the caller: `lab up` watches its four VMs while vagrant
// up runs, the box builder's boot test its one QEMU.
import * as fs from 'node:fs';
import { BOOTED, BootState, judgeConsole } from './console';

export interface ConsoleLog<Vm extends string = string> {
  vm: Vm;
  path: string;
}

export type Verdict = Exclude<BootState, { state: 'booting' }>;

/**
 * Calls onVerdict for every console that is up or stuck, at each poll,
 * until the returned stop function is called; stops by itself at the
 * first stuck one. A console's silence is counted from when its log first
 * appears (the VM started), so a VM vagrant has not created yet is never
 * silent.
 */
export function watchConsoles<Vm extends string>(logs: readonly ConsoleLog<Vm>[], onVerdict: (log: ConsoleLog<Vm>, verdict: Verdict) => void, booted: RegExp = BOOTED, pollMs = 5000): () => void {
  const grownAt = new Map<string, { size: number; at: number }>();
  const poll = () => {
    const now = Date.now();
    for (const log of logs) {
      let text: string;
      try {
        text = fs.readFileSync(log.path, 'utf8');
      } catch {
        continue; // not started yet
      }
      const last = grownAt.get(log.path);
      const grown = !last || last.size !== text.length ? { size: text.length, at: now } : last;
      grownAt.set(log.path, grown);
      const verdict = judgeConsole(text, now - grown.at, booted);
      if (verdict.state === 'booting') continue;
      if (verdict.state === 'stuck') clearInterval(timer);
      onVerdict(log, verdict);
      if (verdict.state === 'stuck') return;
    }
  };
  const timer = setInterval(poll, pollMs);
  return () => clearInterval(timer);
}
