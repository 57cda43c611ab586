import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Argv } from 'yargs';
import { PreflightError } from '../util/errors';
import { forwardToUml, umlLab } from '../uml/lab';
import { checkLabName } from '../lab/names';

export const DEFAULT_LAB = 'slb';

export function withLabName<T>(y: Argv<T>) {
  return y
    .option('name', { alias: 'n', type: 'string', default: DEFAULT_LAB, describe: 'lab name: namespaces are NAME-client, NAME-router, NAME-lb, NAME-rs1, NAME-rs2' })
    // A bad name is the command line's fault: refused with the usage, before any handler runs.
    .check((a) => (checkLabName(String(a.name)), true));
}

/** The number of HTTP requests a verify makes: a usage error unless 1 to 1000. */
export function withRequests<T>(y: Argv<T>, describe: string) {
  return y
    .option('requests', { alias: 'k', type: 'number', default: 16, describe })
    .check((a) => {
      if (!Number.isInteger(a.requests) || a.requests < 1 || a.requests > 1000) throw new Error('--requests must be an integer from 1 to 1000');
      return true;
    });
}

export function requireRoot(what: string): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new PreflightError(`${what} needs root (it creates network namespaces and programs nftables); run it as root or with sudo`);
  }
}

/**
 * When the lab runs on a user-mode-linux guest, run this very command line
 * inside it, pass its output and exit code through, and return true.
 * `outputs`: folders the command writes to; made on the host first, so the
 * guest can be shown them wherever they are.
 */
export async function forwardIfUml(name: string, outputs: readonly (string | undefined)[] = []): Promise<boolean> {
  const record = umlLab(name);
  if (!record) return false;
  const folders = outputs.filter((o): o is string => o !== undefined).map((o) => path.resolve(o));
  for (const f of folders) fs.mkdirSync(f, { recursive: true });
  const r = await forwardToUml(record, process.argv.slice(2), undefined, folders);
  process.stdout.write(r.output);
  process.exitCode = r.code;
  return true;
}
