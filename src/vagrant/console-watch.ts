// Reads VM console logs every few seconds and hands each one's state
// (console.ts) to the caller: `lab up` watches its four VMs while vagrant
// up runs, the box builder's boot test its one QEMU.
import * as fs from 'node:fs';
import { BOOTED, BootState, SILENCE_LIMIT_MS, judgeConsole } from './console';

export interface ConsoleLog<Vm extends string = string> {
  vm: Vm;
  path: string;
}

export type Verdict = Exclude<BootState, { state: 'booting' }>;

export interface WatchOptions {
  /** What counts as booted (default: the box's marker or a login prompt). */
  booted?: RegExp;
  pollMs?: number;
}

/** SLBCTL_CONSOLE_SILENCE_S overrides how long a console may stay silent before its VM has booted. */
export function silenceLimitMs(env: NodeJS.ProcessEnv = process.env): number {
  const seconds = Number(env.SLBCTL_CONSOLE_SILENCE_S);
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : SILENCE_LIMIT_MS;
}

/**
 * Calls onVerdict for every console that is up or stuck, at each poll,
 * until the returned stop function is called; stops by itself at the
 * first stuck one. A console's silence is counted from when its log first
 * appears (the VM started), so a VM vagrant has not created yet is never
 * silent.
 */
export function watchConsoles<Vm extends string>(logs: readonly ConsoleLog<Vm>[], onVerdict: (log: ConsoleLog<Vm>, verdict: Verdict) => void, options: WatchOptions = {}): () => void {
  const silenceLimit = silenceLimitMs();
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
      const verdict = judgeConsole(text, now - grown.at, options.booted ?? BOOTED, silenceLimit);
      if (verdict.state === 'booting') continue;
      if (verdict.state === 'stuck') clearInterval(timer);
      onVerdict(log, verdict);
      if (verdict.state === 'stuck') return;
    }
  };
  const timer = setInterval(poll, options.pollMs ?? 5000);
  return () => clearInterval(timer);
}
