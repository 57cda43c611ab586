import type { Argv } from 'yargs';
import { PreflightError } from '../util/errors';
import { checkLabName } from '../lab/names';

export const DEFAULT_LAB = 'slb';

export function withLabName<T>(y: Argv<T>) {
  return (
    y
      .option('name', {
        alias: 'n',
        type: 'string',
        default: DEFAULT_LAB,
        describe: 'lab name: namespaces are NAME-client, NAME-router, NAME-lb, NAME-rs1, NAME-rs2',
      })
      // A bad name is the command line's fault: refused with the usage, before any handler runs.
      .check((a) => (checkLabName(a.name), true))
  );
}

/** The number of HTTP requests a verify makes: a usage error unless 1 to 1000. */
export function withRequests<T>(y: Argv<T>, describe: string) {
  return y.option('requests', { alias: 'k', type: 'number', default: 16, describe }).check((a) => {
    if (!Number.isInteger(a.requests) || a.requests < 1 || a.requests > 1000)
      throw new Error('--requests must be an integer from 1 to 1000');
    return true;
  });
}

export function requireRoot(what: string): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new PreflightError(`${what} needs root (it creates network namespaces and programs nftables); run it as root or with sudo`);
  }
}
