// A lab's small state file under /run (tmpfs: gone at reboot, like the
// namespaces it describes).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkLabName } from './names';

export interface LabState {
  provider: 'netns';
  mode?: string;
  /** dsr: 'ipip' when the balancer tunnels to the real servers. */
  encapsulation?: string;
  /** The service type applied: tcp (L4) or http/https (L7). */
  protocol?: string;
  /** L7: the balancer has a static cache. */
  cache?: boolean;
  /** How many balancers the lab has (absent: 1). */
  balancers?: number;
  /** How the balancers share the VIP: ecmp (BGP, active/active) or vrrp (active/standby); absent: lb alone serves. */
  ha?: string;
  /** vrrp: whether connection state is copied to the standby. */
  sync?: boolean;
  /** vrrp: what copies it, conntrackd (nftables) or the IPVS sync daemons (IPVS); absent: conntrackd. */
  syncEngine?: string;
  /** Balancers `lab fail` took down and `lab recover` has not brought back. */
  failed?: string[];
  createdAt: string;
}

export const LAB_STATE_ROOT = '/run/slbctl/lab';

/** /run/slbctl/lab/<lab>; the name is checked because `lab down` removes this directory recursively. */
export function labStateDir(lab: string): string {
  checkLabName(lab);
  return path.join(LAB_STATE_ROOT, lab);
}

export async function readLabState(lab: string): Promise<LabState | undefined> {
  let text: string;
  try {
    text = await fs.promises.readFile(path.join(labStateDir(lab), 'state.json'), 'utf8');
  } catch {
    return undefined;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined; // a torn or hand-edited file: treat as no state
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const o = parsed as Record<string, unknown>;
  if (o.provider !== 'netns' || typeof o.createdAt !== 'string') return undefined;
  return {
    provider: 'netns',
    createdAt: o.createdAt,
    ...(typeof o.mode === 'string' ? { mode: o.mode } : {}),
    ...(typeof o.encapsulation === 'string' ? { encapsulation: o.encapsulation } : {}),
    ...(typeof o.protocol === 'string' ? { protocol: o.protocol } : {}),
    ...(typeof o.cache === 'boolean' ? { cache: o.cache } : {}),
    ...(o.balancers === 2 ? { balancers: 2 } : {}),
    ...(typeof o.ha === 'string' ? { ha: o.ha } : {}),
    ...(typeof o.sync === 'boolean' ? { sync: o.sync } : {}),
    ...(typeof o.syncEngine === 'string' ? { syncEngine: o.syncEngine } : {}),
    ...(Array.isArray(o.failed) ? { failed: o.failed.filter((x): x is string => typeof x === 'string') } : {}),
  };
}

export async function writeLabState(lab: string, patch: Partial<LabState>): Promise<void> {
  const current = (await readLabState(lab)) ?? { provider: 'netns', createdAt: new Date().toISOString() };
  await fs.promises.mkdir(labStateDir(lab), { recursive: true });
  const file = path.join(labStateDir(lab), 'state.json');
  // Write then rename, so a reader never sees half a file.
  await fs.promises.writeFile(`${file}.tmp`, `${JSON.stringify({ ...current, ...patch }, null, 2)}\n`);
  await fs.promises.rename(`${file}.tmp`, file);
}
