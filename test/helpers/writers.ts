// Shared pieces of the lock tests: small configs, slbctl and a lock holder in
// the test's namespace.
import * as path from 'node:path';
import { run, RunResult } from '../../src/util/exec';
import { CLI_ENTRY } from '../../src/util/self';
import { Started, startIn, waitUntil } from './processes';

/** A config of `count` fullnat services on VIPs 172.16.75.(first…), real servers .82 and .85. */
export function smallConfig(first: number, count: number, weight = 1): { vips: string[]; yaml: string } {
  const vips: string[] = [];
  const lines = ['backend: nft', 'services:'];
  for (let i = 0; i < count; i++) {
    const vip = `172.16.75.${first + i}`;
    vips.push(vip);
    lines.push(
      `  - name: web${first + i}`,
      `    vip: ${vip}`,
      '    port: 80',
      '    mode: fullnat',
      '    realServers:',
      `      - { address: 172.16.75.82, port: 80, weight: ${weight} }`,
      '      - { address: 172.16.75.85, port: 80, weight: 1 }',
    );
  }
  return { vips, yaml: `${lines.join('\n')}\n` };
}

export function slbctlIn(ns: string, args: readonly string[], timeoutMs = 60_000): Promise<RunResult> {
  return run([process.execPath, CLI_ENTRY, ...args], { netns: ns, timeoutMs });
}

/** dist/test/helpers/lock-holder.js */
export const LOCK_HOLDER = path.join(__dirname, 'lock-holder.js');

/** A process in `ns` holding its `kind` lock (withChild: shared with a child, as with slbctl's nft); resolves once it holds it. */
export async function holdLock(ns: string, kind: 'write' | 'controller', withChild = false): Promise<Started> {
  const holder = startIn(ns, [LOCK_HOLDER, kind, ...(withChild ? ['--child'] : [])]);
  await waitUntil(`the ${kind} lock held by ${holder.pid}`, 20_000, () => {
    if (holder.done()) throw new Error(`the lock holder exited: ${holder.out()} ${holder.err()}`);
    return holder.out().startsWith('held');
  });
  return holder;
}
