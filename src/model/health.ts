// The healthCheck part of a service in the config: validated here, so a bad
// check is refused by `slbctl validate`, never discovered at 3 a.m.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { findCommand } from '../util/exec';
import { FASTEST_INTERVAL_MS, DEFAULT_TIMING } from '../health/types';

/**
 * The longest duration a config may hold. Node clamps a timer above 2^31-1 ms
 * (24.8 days) to 1 ms, so `interval: 3000000000` would check in a busy loop;
 * one day is far above any sensible interval and far below that limit.
 */
export const MAX_DURATION_MS = 86_400_000;

export const HEALTH_KINDS = ['tcp', 'http', 'https', 'command', 'icmp'] as const;
export type HealthKind = (typeof HEALTH_KINDS)[number];
export const HEALTH_KEYS = ['type', 'port', 'url', 'expectStatus', 'body', 'command', 'interval', 'timeout', 'rise', 'fall'];

export interface HealthCheck {
  type: HealthKind;
  /** tcp/http(s): port to probe (icmp: none) (default: the real server's port). */
  port?: number;
  /** http(s): URL; {address} is replaced by the real server's address. Default http(s)://{address}:{port}/ */
  url?: string;
  expectStatus: [number, number];
  body?: string;
  /** command: argument array; {address} and {port} are replaced. */
  command?: string[];
  intervalMs: number;
  timeoutMs: number;
  rise: number;
  fall: number;
}

/** "500ms", "2s", or a number of milliseconds (callers bound it: MAX_DURATION_MS). */
export function parseDuration(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isInteger(v) && v > 0) return v;
  if (typeof v !== 'string') return undefined;
  const m = /^(\d+(?:\.\d+)?)(ms|s)$/.exec(v.trim());
  if (!m) return undefined;
  const n = Number(m[1]) * (m[2] === 's' ? 1000 : 1);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

type Fail = (key: string | undefined, message: string) => void;

export function checkHealth(raw: Record<string, unknown>, fail: Fail): HealthCheck | undefined {
  const type = raw.type;
  if (typeof type !== 'string' || !(HEALTH_KINDS as readonly string[]).includes(type)) {
    fail('type', `${JSON.stringify(type)} is not a health check type; use one of ${HEALTH_KINDS.join(', ')}`);
    return undefined;
  }
  let bad = false;
  const failBad: Fail = (k, m) => {
    bad = true;
    fail(k, m);
  };
  const hc: HealthCheck = {
    type: type as HealthKind,
    expectStatus: [200, 399],
    intervalMs: DEFAULT_TIMING.intervalMs,
    timeoutMs: DEFAULT_TIMING.timeoutMs,
    rise: DEFAULT_TIMING.rise,
    fall: DEFAULT_TIMING.fall,
  };
  let timingBad = false;
  for (const [key, field] of [
    ['interval', 'intervalMs'],
    ['timeout', 'timeoutMs'],
  ] as const) {
    if (raw[key] === undefined) continue;
    const ms = parseDuration(raw[key]);
    if (ms === undefined) {
      timingBad = true;
      failBad(key, `${JSON.stringify(raw[key])} is not a duration (e.g. "500ms", "2s")`);
    } else if (ms > MAX_DURATION_MS) {
      timingBad = true;
      failBad(key, tooLong(raw[key]));
    } else hc[field] = ms;
  }
  if (hc.intervalMs < FASTEST_INTERVAL_MS)
    failBad('interval', `${hc.intervalMs}ms is below the fastest interval, ${FASTEST_INTERVAL_MS}ms`);
  // Compared only when both parsed: a refused value must not also be blamed on the other.
  if (!timingBad && raw.timeout !== undefined && hc.timeoutMs > hc.intervalMs)
    failBad('timeout', `${hc.timeoutMs}ms is longer than the interval (${hc.intervalMs}ms): a check must end before the next one starts`);
  if (raw.timeout === undefined) hc.timeoutMs = Math.min(hc.timeoutMs, hc.intervalMs);
  for (const key of ['rise', 'fall'] as const) {
    if (raw[key] === undefined) continue;
    const n = raw[key];
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 100)
      failBad(key, `${JSON.stringify(n)} is not a count from 1 to 100`);
    else hc[key] = n;
  }
  if (hc.type === 'icmp') {
    // An echo request has none of these: refuse them rather than ignore them.
    for (const key of ['port', 'url', 'expectStatus', 'body', 'command']) {
      if (raw[key] !== undefined) failBad(key, 'does not apply to icmp checks (an echo request has no port, URL, status, body or command)');
    }
    return bad ? undefined : hc;
  }
  if (raw.port !== undefined) {
    const p = raw.port;
    if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535)
      failBad('port', `${JSON.stringify(p)} is not a port number (1-65535)`);
    else hc.port = p;
  }
  if (raw.url !== undefined) {
    if (hc.type !== 'http' && hc.type !== 'https') failBad('url', `only applies to http and https checks (this one is ${hc.type})`);
    else if (typeof raw.url !== 'string' || !/^https?:\/\//.test(raw.url))
      failBad('url', `${JSON.stringify(raw.url)} is not an http:// or https:// URL`);
    else hc.url = raw.url;
  }
  if (raw.expectStatus !== undefined) {
    const m =
      typeof raw.expectStatus === 'string'
        ? /^(\d{3})(?:-(\d{3}))?$/.exec(raw.expectStatus)
        : typeof raw.expectStatus === 'number'
          ? [String(raw.expectStatus), String(raw.expectStatus)]
          : null;
    const lo = m ? Number(m[1]) : NaN;
    const hi = m ? Number(m[2] ?? m[1]) : NaN;
    if (!m || lo < 100 || hi > 599 || lo > hi)
      failBad('expectStatus', `${JSON.stringify(raw.expectStatus)} is not a status or range (e.g. 200 or "200-399")`);
    else hc.expectStatus = [lo, hi];
  }
  if (raw.body !== undefined) {
    if (typeof raw.body !== 'string') failBad('body', 'must be a string the response body contains');
    else hc.body = raw.body;
  }
  if (hc.type === 'command') {
    const argv = raw.command;
    if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string'))
      failBad('command', 'is required for a command check: a list of program and arguments (no shell)');
    else {
      const program = argv[0];
      const problem = program.includes('/') ? programPathProblem(program) : findCommand(program) ? undefined : 'is not on PATH';
      if (problem) failBad('command', `"${program}" ${problem}`);
      else hc.command = argv;
    }
  } else if (raw.command !== undefined) failBad('command', `only applies to command checks (this one is ${hc.type})`);
  return bad ? undefined : hc;
}

function tooLong(value: unknown): string {
  return `${JSON.stringify(value)} is longer than one day; use at most "86400s" (${MAX_DURATION_MS}ms)`;
}

/**
 * Why a program given by path cannot run, or undefined when it can. A relative
 * path is refused: `slbctl run` (a systemd unit runs it in /) does not start
 * checks from the directory `validate` ran in.
 */
function programPathProblem(program: string): string | undefined {
  if (!path.isAbsolute(program)) return 'is a relative path; give the absolute path of the program, or a program name on PATH';
  let st: fs.Stats;
  try {
    st = fs.statSync(program);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR'
      ? 'does not exist; install the program or correct the path'
      : `cannot be read (${code ?? (e as Error).message})`;
  }
  if (!st.isFile()) return 'is not a file; give the path of the program itself';
  try {
    fs.accessSync(program, fs.constants.X_OK);
  } catch {
    return `is not executable; make it so (chmod +x ${program}) or run it through its interpreter, e.g. [/bin/sh, ${program}]`;
  }
  return undefined;
}
