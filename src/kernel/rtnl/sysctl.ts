// sysctls through /proc/sys of the current network namespace (net.* are per
// namespace once the process is in it).
import * as fs from 'node:fs';
import { KernelError } from '../../util/errors';

/**
 * "net.ipv4.ip_forward", or, as sysctl(8) writes it when a component holds a
 * dot (an interface such as eth0.100), "net/ipv4/conf/eth0.100/rp_filter".
 */
function pathOf(key: string): string {
  const slashed = key.includes('/');
  if (!/^[a-z0-9_./-]+$/i.test(key) || key.split(slashed ? '/' : '.').some((p) => p === '' || p === '..' || p === '.'))
    throw new KernelError(`sysctl: bad key ${key}`);
  return `/proc/sys/${slashed ? key : key.replace(/\./g, '/')}`;
}

/** The key of a per-interface IPv4 sysctl. */
export function interfaceSysctl(device: string, name: string): string {
  return device.includes('.') ? `net/ipv4/conf/${device}/${name}` : `net.ipv4.conf.${device}.${name}`;
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
    throw new KernelError(`sysctl: set ${key}=${value}: ${(e as Error).message}`);
  }
}
