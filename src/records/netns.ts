// Records that describe one network namespace (what slbctl owns there, its
// drains, its controller) are named by the namespace's inode, and carry the
// namespace's cookie inside. Inodes are reused once a namespace is gone; the
// cookie is not (it is unique while the machine runs). A record whose cookie
// is not the current namespace's belongs to a namespace that no longer
// exists: it is reported, set aside and never acted on.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { inNetns, netnsCookie, netnsInode } from '../util/netns';
import { runDir } from '../util/rundir';
import { readJson, removeLeftovers, setAside, writeJsonAtomic, writeTextAtomic } from './files';

export interface NetnsIdentity {
  inode: number;
  /** undefined on kernels without SO_NETNS_COOKIE (before 5.14): the inode alone then names the namespace. */
  cookie?: string;
}

export const RECORD_KINDS = ['ownership', 'drains', 'controller', 'nft-applied', 'plan-memo'] as const;
export type RecordKind = (typeof RECORD_KINDS)[number];

let current: NetnsIdentity | undefined;

/** The identity of the namespace this process runs in (it never changes for slbctl's main thread). */
export function currentNetns(): NetnsIdentity {
  if (!current) {
    const cookie = netnsCookie();
    current = cookie === undefined ? { inode: netnsInode() } : { inode: netnsInode(), cookie };
  }
  return current;
}

/** The identity of a named namespace (/run/netns/NAME), read from inside it. */
export function identityOf(netnsName: string): NetnsIdentity {
  return inNetns(netnsName, () => {
    const cookie = netnsCookie();
    return cookie === undefined ? { inode: netnsInode() } : { inode: netnsInode(), cookie };
  });
}

export function recordFile(kind: RecordKind, id: NetnsIdentity = currentNetns()): string {
  return runDir(kind, `net-${id.inode}.json`);
}

function sameNamespace(a: NetnsIdentity, b: Partial<NetnsIdentity> | undefined): boolean {
  return b !== undefined && a.inode === b.inode && (a.cookie ?? '') === (b.cookie ?? '');
}

/** Where stale records are reported (the CLI: stderr; the controller: its log). */
export type Reporter = (message: string) => void;
let reporter: Reporter = (m) => process.stderr.write(`slbctl: ${m}\n`);
export function setRecordReporter(r: Reporter): void {
  reporter = r;
}

/**
 * The payload of this namespace's record of `kind`, or undefined when there
 * is none. A record of another namespace (same inode, other cookie), an
 * unreadable one, or one without an identity is set aside and reported.
 */
export function readRecord(kind: RecordKind, id: NetnsIdentity = currentNetns()): Record<string, unknown> | undefined {
  const file = recordFile(kind, id);
  const r = readJson(file);
  if (r.kind === 'absent') return undefined;
  const data =
    r.kind === 'ok' && typeof r.data === 'object' && r.data !== null && !Array.isArray(r.data)
      ? (r.data as Record<string, unknown>)
      : undefined;
  if (!data) {
    const moved = setAside(file, 'unreadable');
    reporter(
      `the ${kind} record ${file} is unreadable (${r.kind === 'unreadable' ? r.why : 'not a record'}); ignored and moved to ${moved}`,
    );
    return undefined;
  }
  const netns = data.netns as Partial<NetnsIdentity> | undefined;
  if (!sameNamespace(id, netns)) {
    const moved = setAside(file, `stale-${netns?.cookie ?? 'unknown'}`);
    reporter(
      `the ${kind} record ${file} was left by another network namespace that had the same inode (cookie ${netns?.cookie ?? 'none'}, this one ${id.cookie ?? 'none'}); ignored and moved to ${moved}`,
    );
    return undefined;
  }
  return data;
}

export function writeRecord(kind: RecordKind, payload: Record<string, unknown>, id: NetnsIdentity = currentNetns(), compact = false): void {
  writeJsonAtomic(recordFile(kind, id), { netns: id, ...payload }, compact);
}

/** A record whose payload is already JSON: `members` is the text of its fields, without the braces. */
export function writeRecordText(kind: RecordKind, members: string, id: NetnsIdentity = currentNetns()): void {
  writeTextAtomic(recordFile(kind, id), `{"netns":${JSON.stringify(id)},${members}}`);
}

/** A journal of changes beside a record (src/kernel/nft/applied.ts): it goes wherever the record goes. */
export const journalFile = (kind: RecordKind, id: NetnsIdentity = currentNetns()): string => `${recordFile(kind, id)}.journal`;

export function removeRecord(kind: RecordKind, id: NetnsIdentity = currentNetns()): void {
  fs.rmSync(recordFile(kind, id), { force: true });
  fs.rmSync(journalFile(kind, id), { force: true });
  removeLeftovers(recordFile(kind, id));
}

/** Remove every record of a namespace that is going away (lab down); records of others are left alone. */
export function removeRecordsOf(id: NetnsIdentity): string[] {
  const removed: string[] = [];
  for (const kind of RECORD_KINDS) {
    const file = recordFile(kind, id);
    const r = readJson(file);
    if (r.kind !== 'ok') continue;
    const netns = (r.data as { netns?: Partial<NetnsIdentity> } | null)?.netns;
    if (!sameNamespace(id, netns)) continue;
    fs.rmSync(file, { force: true });
    fs.rmSync(journalFile(kind, id), { force: true });
    removed.push(path.basename(path.dirname(file)));
  }
  // The L7 engine's directory of that namespace (its processes went with the namespace's processes).
  const haproxy = runDir('haproxy', `net-${id.inode}`);
  const state = readJson(path.join(haproxy, 'services.json'));
  if (state.kind === 'ok' && ((state.data as { cookie?: string } | null)?.cookie ?? '') === (id.cookie ?? '')) {
    fs.rmSync(haproxy, { recursive: true, force: true });
    removed.push('haproxy');
  }
  // The BGP speaker's files (config, log) of this namespace: its BIRD ended with the namespace's processes.
  // Likewise keepalived's and conntrackd's (ha.vrrp, ha.sync), and the record of the IPVS sync daemons (gone with the namespace).
  for (const engine of ['bird', 'keepalived', 'conntrackd', 'ipvs-sync']) {
    const dir = runDir(engine, `net-${id.inode}`);
    if (!fs.existsSync(dir)) continue;
    fs.rmSync(dir, { recursive: true, force: true });
    removed.push(engine);
  }
  return removed;
}
