import type { Argv } from 'yargs';
import { UsageError, EXIT } from './errors';

export const DEFAULT_LAB = 'slb';

export function withLabName<T>(y: Argv<T>) {
  return y.option('name', { alias: 'n', type: 'string', default: DEFAULT_LAB, describe: 'lab name: namespaces are NAME-client, NAME-router, NAME-lb, NAME-rs1, NAME-rs2' });
}

export function requireRoot(what: string): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new UsageError(`${what} needs root (it creates network namespaces and programs nftables); run it as root or with sudo`, EXIT.preflight);
  }
}
