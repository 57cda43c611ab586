// Is HAProxy here, and does it accept a config? `haproxy -c` is the judge:
// its own messages, cleaned of the lead-in and of temporary paths, are what
// the user reads when a config is refused.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EXIT, PreflightError, SlbctlError } from '../../util/errors';
import { findCommand, run } from '../../util/exec';

/** HAProxy refused a config: `lines` are its own messages, with the file shown as haproxy.cfg. */
export class HaproxyConfigError extends SlbctlError {
  readonly exitCode = EXIT.config;
  constructor(
    what: string,
    readonly lines: string[],
  ) {
    super(`${what}: haproxy -c refused the configuration: ${lines.join(' / ')}`);
  }
}

/** Why HAProxy cannot be used here, as one sentence, or undefined when it can. */
export function haproxyMissing(): string | undefined {
  return findCommand('haproxy')
    ? undefined
    : 'haproxy is not installed: run scripts/setup.sh (it installs the Debian package) and try again';
}

export function assertHaproxyInstalled(): void {
  const missing = haproxyMissing();
  if (missing) throw new PreflightError(missing);
}

/**
 * HAProxy's own complaint lines from `haproxy -c`: the ALERTs (and WARNINGs)
 * without the "[ALERT] (pid) : config :" lead-in, and the temporary file's
 * path shown as haproxy.cfg, so the message reads the same wherever it was checked.
 */
export function checkMessages(output: string, file?: string): string[] {
  const lines: string[] = [];
  for (const raw of output.split('\n')) {
    const m = /^\[(ALERT|WARNING)\]\s*(?:\(\d+\)\s*)?:\s*(?:config\s*:\s*)?(.*)$/.exec(raw.trim());
    if (!m?.[2]) continue;
    const text = (file ? m[2].split(file).join('haproxy.cfg') : m[2]).trim();
    // The closing summary adds nothing to the lines before it.
    if (/^(Error\(s\) found in configuration file|Fatal errors found in configuration)/.test(text)) continue;
    lines.push(m[1] === 'WARNING' ? `warning: ${text}` : text);
  }
  return lines;
}

export async function checkFile(what: string, file: string): Promise<void> {
  const r = await run(['haproxy', '-c', '-f', file], { timeoutMs: 30_000 });
  if (r.code === 0) return;
  const lines = checkMessages(`${r.stdout}\n${r.stderr}`, file);
  throw new HaproxyConfigError(what, lines.length ? lines : [`exit ${r.signal ?? r.code}: ${(r.stderr || r.stdout).trim()}`]);
}

/**
 * Check a config as HAProxy reads it (`haproxy -c`) without touching any
 * instance; throws HaproxyConfigError with HAProxy's message lines. Files the
 * config names (PEMs) must already exist where it names them.
 */
export async function check(configText: string): Promise<void> {
  assertHaproxyInstalled();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-haproxy-check-'));
  try {
    const file = path.join(dir, 'haproxy.cfg');
    fs.writeFileSync(file, configText, { mode: 0o600 });
    await checkFile('haproxy config', file);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
