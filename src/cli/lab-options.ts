import type { Argv } from 'yargs';
import { PreflightError } from '../util/errors';
import { forwardToUml, umlLab } from '../uml/lab';

export const DEFAULT_LAB = 'slb';

export function withLabName<T>(y: Argv<T>) {
  return y.option('name', { alias: 'n', type: 'string', default: DEFAULT_LAB, describe: 'lab name: namespaces are NAME-client, NAME-router, NAME-lb, NAME-rs1, NAME-rs2' });
}

export function requireRoot(what: string): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new PreflightError(`${what} needs root (it creates network namespaces and programs nftables); run it as root or with sudo`);
  }
}

/**
 * When the lab runs on a user-mode-linux guest, run this very command line
 * inside it, pass its output and exit code through, and return true.
 */
export async function forwardIfUml(name: string): Promise<boolean> {
  const record = umlLab(name);
  if (!record) return false;
  const r = await forwardToUml(record, process.argv.slice(2));
  process.stdout.write(r.output);
  process.exitCode = r.code;
  return true;
}
