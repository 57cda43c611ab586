// sysctls through /proc/sys of the current network namespace (net.* are per
// namespace once the process is in it).
import * as fs from 'node:fs';

function pathOf(key: string): string {
  if (!/^[a-z0-9_.-]+$/i.test(key)) throw new Error(`sysctl: bad key ${key}`);
  return `/proc/sys/${key.replace(/\./g, '/')}`;
}

export function readSysctl(key: string): string {
  try {
    return fs.readFileSync(pathOf(key), 'utf8').trim();
  } catch {
    return '';
  }
}

export function writeSysctl(key: string, value: string): void {
  try {
    fs.writeFileSync(pathOf(key), `${value}\n`);
  } catch (e) {
    throw new Error(`sysctl: set ${key}=${value}: ${(e as Error).message}`);
  }
}
