// The memo of the last plan that left nothing to do: what it read (the
// config, the backend's stamp, the interfaces, the sysctls, the ownership
// record), digested, in /run/slbctl/plan-memo/net-INODE.json (per network
// namespace, like the other records). A plan whose inputs digest the same
// answers "no change" without resolving or diffing again; one whose config
// differs in a few services only, with the host as it was, resolves and
// diffs only those services against the backend's record (the full planner,
// restricted to them: src/plan/planner.ts PlanScope).
//
// Everything a plan reads is covered, or the memo is not used:
// - the config: a digest of the parsed config (per service, and the rest);
//   `slbctl plan` also keeps the digest of the file's bytes, to skip parsing;
// - the backend's kernel state: its stamp (nftables: the ruleset generation,
//   NFT_MSG_GETGEN), which must also be the generation of its record of the
//   tables (src/kernel/nft/applied.ts); backends without a stamp (IPVS) have
//   no memo;
// - the interfaces (links, their MACs and state, every IPv4 address): dumped
//   over rtnetlink and digested at each plan, so an address deleted by hand
//   (a VIP) makes the plan full and puts it back;
// - the sysctls the plan set or read: read again, each compared;
// - the ownership record: its inode, size and mtime; with "adding" entries
//   (an apply cut short) no memo is written;
// - slbctl itself: the memo's format and the build of the planner.
// Not covered, so those configs always plan in full: L7 services (HAProxy's
// state has no stamp) and DSR on a backend that rewrites MACs (the
// neighbour table).
//
// Written: after a plan from a config that found nothing to change, and
// after an apply whose backend recorded its tables at the new stamp and that
// changed no address (the interfaces it read are still the host's) and left
// no intent in the ownership record. Removed: by every apply before it
// changes anything (src/engine/engine.ts executePlan), so a memo never
// outlives a change it did not see through.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { Config, isL7, serviceKey } from '../model/types';
import { NetInterface } from '../kernel/rtnl/rtnl';
import { readSysctl } from '../kernel/rtnl/sysctl';
import { readRecord, recordFile, removeRecord, writeRecordText } from '../records/netns';
import { fileIdentity } from '../records/files';

/** Bumped whenever what a memo stands for changes shape. */
const FORMAT = 3;

export interface HostInputs {
  /** The backend's stamp (nftables: "nft generation N"). */
  stamp: string;
  /** Digest of the links and IPv4 addresses. */
  interfaces: string;
  /** Inode, size and mtime of the ownership record ('' when there is none). */
  ownership: string;
}

export interface ConfigDigest {
  /** The config without its services (backend, defaults, conntrack, ha …). */
  rest: string;
  /** Per service, in config order: its key and digest. */
  services: [string, string][];
}

export interface PlanMemo {
  backend: string;
  /** The backend the config names (`auto`, `nft` …): with `bytes`, what `slbctl plan` needs before parsing. */
  choice: string;
  host: HostInputs;
  /** The sysctls the plan needs, with the values it wants (and found or set). */
  sysctls: Record<string, string>;
  rest: string;
  services: [string, string][];
  /** Digest of the file's bytes the config was parsed from, when a command read one. */
  bytes?: string;
}

/**
 * sha1: it tells a change apart (a collision would take a config crafted for
 * it, by whoever may write the config anyway) and costs less than sha256 on
 * the 3.5 MB config of 10,000 services.
 */
const digest = (text: string | Buffer): string => crypto.hash('sha1', text, 'base64');

/** The digest of a config file's bytes. */
export const bytesDigest = (bytes: string | Buffer): string => digest(bytes);

/**
 * Each service's digest, by the service object: a config's services are
 * never changed in place (each is frozen when first digested), so a service
 * object a later config still holds (the controller keeps those whose
 * weights health and drains did not change; a reloaded file makes new ones)
 * is not serialised and hashed again. A weight change of one service of
 * 10,000 then digests one.
 */
const byObject = new WeakMap<Config['services'][number], [string, string]>();

function freezeService(s: Config['services'][number]): void {
  for (const r of s.realServers) Object.freeze(r);
  Object.freeze(s.realServers);
  Object.freeze(s);
}

/** The last list digested, and its digests: a list of (mostly) the same objects in the same places is compared, not looked up. */
let lastList: { services: Config['services']; digests: [string, string][] } | undefined;

/**
 * The digests of the services first seen as new objects, by their JSON: a
 * reloaded file (every service a new object, most as they were) serialises
 * each service but hashes only those whose text is new (10,000 hashes were
 * 60 ms of an unchanged reload).
 */
let byText = new Map<string, [string, string]>();

function serviceDigests(services: Config['services']): [string, string][] {
  const last = lastList;
  const out = new Array<[string, string]>(services.length);
  let texts: Map<string, [string, string]> | undefined;
  for (let i = 0; i < services.length; i++) {
    const s = services[i];
    if (last && last.services[i] === s) {
      out[i] = last.digests[i];
      continue;
    }
    let d = byObject.get(s);
    if (d === undefined) {
      const text = JSON.stringify(s);
      d = byText.get(text) ?? [serviceKey(s), digest(text)];
      (texts ??= new Map()).set(text, d);
      freezeService(s);
      byObject.set(s, d);
    }
    out[i] = d;
  }
  lastList = { services, digests: out };
  // Kept for the next reload of the same file: the texts of a reload's new objects (a few changed ones are added).
  if (texts && (texts.size * 2 >= services.length || byText.size > 2 * services.length + 1024)) byText = texts;
  else if (texts) for (const [text, d] of texts) byText.set(text, d);
  return out;
}

/** The config's digests: of the rest, and of each service (one not serialised again while it is the same object). */
export function digestConfig(config: Config): ConfigDigest {
  const { services, ...rest } = config;
  return { rest: digest(JSON.stringify(rest)), services: serviceDigests(services) };
}

/** Whether a config digests as the memo's did: the same rest, the same services in the same order. */
export function sameConfig(memo: PlanMemo, config: ConfigDigest): boolean {
  if (memo.rest !== config.rest || memo.services.length !== config.services.length) return false;
  for (let i = 0; i < config.services.length; i++) {
    const [key, d] = config.services[i];
    if (memo.services[i][0] !== key || memo.services[i][1] !== d) return false;
  }
  return true;
}

/** Digests of the interfaces by array: Rtnl.interfaces() gives the same frozen array while the kernel reports no change. */
const interfaceDigests = new WeakMap<readonly NetInterface[], string>();

/** The links and addresses as a plan reads them (NetInterface carries nothing that moves by itself, like counters). */
export function digestInterfaces(interfaces: readonly NetInterface[]): string {
  let d = interfaceDigests.get(interfaces);
  if (d === undefined) {
    d = digest(JSON.stringify(interfaces));
    if (Object.isFrozen(interfaces)) interfaceDigests.set(interfaces, d);
  }
  return d;
}

/** Whether a plan of this config can be skipped or narrowed by a memo at all. */
export function memoFits(config: Config, dsrNeedsMacs: boolean): boolean {
  return !config.services.some((s) => isL7(s.protocol) || (dsrNeedsMacs && s.mode === 'dsr'));
}

export function ownershipStamp(): string {
  return fileIdentity(recordFile('ownership')) ?? '';
}

/** The build of the planner: a memo made by another build of slbctl is no memo. */
function build(): string {
  const files = [__filename, require.resolve('../plan/planner'), require.resolve('./resolve'), require.resolve('./engine')];
  return files.map((f) => fs.statSync(f).mtimeMs).join('/');
}

/** The memo this process read or wrote last, with the stat of its file then (another process may replace it). */
let cached: { file: string; stat: string; memo: PlanMemo } | undefined;

/** This namespace's memo, or undefined. */
export function readMemo(): PlanMemo | undefined {
  const file = recordFile('plan-memo');
  const stat = fileIdentity(file);
  if (stat === undefined) return undefined;
  if (cached?.file === file && cached.stat === stat) return cached.memo;
  const r = readRecord('plan-memo');
  if (!r || r.format !== FORMAT || r.build !== build() || typeof r.memo !== 'object' || r.memo === null) return undefined;
  cached = { file, stat, memo: r.memo as PlanMemo };
  return cached.memo;
}

/** The JSON of each [key, digest] pair: the pairs of services a change did not touch are the same arrays memo after memo. */
const pairText = new WeakMap<readonly [string, string], string>();

/** The pairs and texts of the last memo written: the next one's pairs are mostly the same, in the same places. */
let lastText: { services: readonly (readonly [string, string])[]; parts: string[] } | undefined;

function servicesText(services: readonly (readonly [string, string])[]): string {
  const last = lastText;
  const parts = new Array<string>(services.length);
  for (let i = 0; i < services.length; i++) {
    const pair = services[i];
    if (last && last.services[i] === pair) {
      parts[i] = last.parts[i];
      continue;
    }
    let text = pairText.get(pair);
    if (text === undefined) pairText.set(pair, (text = JSON.stringify(pair)));
    parts[i] = text;
  }
  lastText = { services, parts };
  return `[${parts.join(',')}]`;
}

export function writeMemo(m: PlanMemo): void {
  // The services' part (10,000 pairs) from their kept texts, the rest as JSON: the same record writeRecord would write.
  const { services, ...rest } = m;
  const memoText = `${JSON.stringify(rest).slice(0, -1)}${Object.keys(rest).length > 0 ? ',' : ''}"services":${servicesText(services)}}`;
  writeRecordText('plan-memo', `"format":${FORMAT},"build":${JSON.stringify(build())},"memo":${memoText}`);
  const file = recordFile('plan-memo');
  const stat = fileIdentity(file);
  cached = stat === undefined ? undefined : { file, stat, memo: m };
}

/** The backend a config file names, when the memo was made from exactly these bytes (`slbctl plan` then parses nothing). */
export function choiceOfFile(bytes: string): string | undefined {
  const m = readMemo();
  return m?.bytes === bytes ? m.choice : undefined;
}

/** A config file's text and the digest of its bytes, read once; undefined when it cannot be read (the config loader then says why). */
export function readConfigText(file: string): { text: string; bytes: string } | undefined {
  try {
    const raw = fs.readFileSync(file);
    return { text: raw.toString('utf8'), bytes: bytesDigest(raw) };
  } catch {
    return undefined;
  }
}

/**
 * Before anything changes: a memo must never stand for a state an apply is
 * leaving. Renamed aside at once (a writer's temporary name, which
 * removeLeftovers clears if this process dies first) and removed in the
 * background: freeing the 600 KB of a 10,000-service memo took 3 ms of a
 * weight change.
 */
export function forgetMemo(): void {
  cached = undefined;
  const file = recordFile('plan-memo');
  const aside = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  try {
    fs.renameSync(file, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') removeRecord('plan-memo');
    return;
  }
  fs.unlink(aside, () => undefined);
}

/** Whether the sysctls still hold the values the memo's plan wanted. */
export function sysctlsHold(wanted: Record<string, string>): boolean {
  for (const [key, value] of Object.entries(wanted)) {
    try {
      if (readSysctl(key) !== value) return false;
    } catch {
      return false;
    }
  }
  return true;
}

export const sameHost = (a: HostInputs, b: HostInputs): boolean =>
  a.stamp === b.stamp && a.interfaces === b.interfaces && a.ownership === b.ownership;
