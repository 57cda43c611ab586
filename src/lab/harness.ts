// Harness for tests and benchmarks: `slbctl run` in a lab namespace with JSON logs, and a steady
// request loop in another, both child processes whose output is parsed.
import { ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import { CLI_ENTRY } from '../util/self';
import { RequestRecord } from './request-loop';

export interface LogLine {
  time: string;
  level: string;
  event: string;
  msg: string;
  [k: string]: unknown;
}

/** Call `each` with every whole line the child writes on `stream`. */
export function lines(child: ChildProcess, stream: 'stdout' | 'stderr', each: (line: string) => void): void {
  let buf = '';
  child[stream]?.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      each(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
}

export interface RunningController {
  logs: LogLine[];
  /** Lines that were not JSON (should be none). */
  other: string[];
  waitFor(pred: (l: LogLine) => boolean, timeoutMs: number, what: string): Promise<LogLine>;
  stop(): Promise<number>;
  pid: number;
}

/** `slbctl run` in `netns`; `prefix` goes between `ip netns exec NS` and node (e.g. setpriv … --). */
export function startController(netns: string, file: string, extra: string[] = [], prefix: string[] = []): RunningController {
  const child = spawn(
    'ip',
    ['netns', 'exec', netns, ...prefix, process.execPath, CLI_ENTRY, 'run', '-f', file, '--log-format', 'json', ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const logs: LogLine[] = [];
  const other: string[] = [];
  const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  let exitCode: number | undefined;
  void exited.then((c) => {
    exitCode = c;
  });
  const take = (line: string) => {
    try {
      logs.push(JSON.parse(line) as LogLine);
    } catch {
      other.push(line);
    }
  };
  lines(child, 'stderr', take);
  lines(child, 'stdout', take);
  return {
    logs,
    other,
    pid: child.pid ?? -1,
    async waitFor(pred, timeoutMs, what) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const hit = logs.find(pred);
        if (hit) return hit;
        if (exitCode !== undefined)
          throw new Error(
            `slbctl run exited (${exitCode}) before ${what}; log:\n${[...logs.map((l) => JSON.stringify(l)), ...other].join('\n')}`,
          );
        if (Date.now() > until)
          throw new Error(`no ${what} within ${timeoutMs} ms; log:\n${[...logs.map((l) => JSON.stringify(l)), ...other].join('\n')}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async stop() {
      if (exitCode !== undefined) return exitCode;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

export interface RequestLoop {
  records: RequestRecord[];
  stop(): Promise<RequestRecord[]>;
}

export function startRequestLoop(netns: string, url: string, gapMs = 20, timeoutMs = 1000): RequestLoop {
  const script = path.join(__dirname, 'request-loop.js');
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, script, url, String(gapMs), String(timeoutMs)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const records: RequestRecord[] = [];
  lines(child, 'stdout', (l) => {
    try {
      records.push(JSON.parse(l) as RequestRecord);
    } catch {
      /* partial line at exit */
    }
  });
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  return {
    records,
    async stop() {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
      return records;
    },
  };
}
