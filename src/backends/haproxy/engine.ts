// The L7 engine of one network namespace: the HAProxy instance slbctl owns
// there, read (observe) and changed (execute) like a kernel backend. What it
// serves is slbctl's model of the L7 services, kept beside the instance
// (services.json, written after every change that succeeded); weights are
// checked against what the runtime API reports, so a weight changed by hand
// is drift and is set back.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { L7Observed, L7ServiceState } from '../../model/state';
import { serviceKey } from '../../model/types';
import { L7Change } from '../../plan/types';
import { KernelError, PreflightError, SlbctlError } from '../../util/errors';
import { runDir } from '../../util/rundir';
import { currentNetns } from '../../records/netns';
import { readJson, writeJsonAtomic } from '../../records/files';
import { L7Service, backendName, haproxyWeight, renderHaproxyConfig, serverName } from './render';
import { StatRow } from './runtime';
import { HaproxyInstance, assemblePemFiles } from './instance';
import { haproxyMissing } from './check';
import {
  TPROXY_MARK,
  TPROXY_TABLE,
  absent,
  addReturnPath,
  complete,
  observeReturnPath,
  removeReturnPath,
  restoreReturnPath,
} from './return-path';
import { Rtnl } from '../../kernel/rtnl/rtnl';
import { requireNft } from '../../kernel/nft/client';

const STATE_FILE = 'services.json';

/** The instance's name: one per network namespace, like slbctl's records (the inode; the cookie is checked inside). */
const instanceId = () => `net-${currentNetns().inode}`;

/** The model as the renderer takes it. */
export function toRenderModel(s: L7ServiceState): L7Service {
  const r: L7Service = {
    key: serviceKey(s),
    name: s.name,
    vip: s.vip,
    port: s.port,
    protocol: s.protocol,
    mode: s.mode,
    scheduler: s.scheduler,
    realServers: s.realServers.map((x) => ({ ...x })),
  };
  if (s.snatAddress) r.snatAddress = s.snatAddress;
  if (s.tls) r.tls = { ...s.tls };
  if (s.cache) r.cache = { maxAgeSeconds: s.cache.maxAge, maxObjectBytes: s.cache.maxObjectSize, totalBytes: s.cache.totalSize };
  return r;
}

interface StateRecord {
  cookie: string;
  services: L7ServiceState[];
}

export class L7Engine {
  /** rtnetlink, for the transparent proxy's return path (observe and change); without it (status) that path is not looked at. */
  constructor(private readonly rtnl?: Rtnl) {}

  private readonly instance = new HaproxyInstance({ id: instanceId(), baseDir: runDir('haproxy') });
  private readonly paths = this.instance.paths;
  private readonly dir = this.paths.dir;

  private readState(): L7ServiceState[] {
    const r = readJson(path.join(this.dir, STATE_FILE));
    if (r.kind !== 'ok') return [];
    const data = r.data as Partial<StateRecord>;
    // A record of a namespace that is gone (its inode reused) describes nothing here.
    if ((data.cookie ?? '') !== (currentNetns().cookie ?? '') || !Array.isArray(data.services)) return [];
    return data.services;
  }

  private writeState(services: readonly L7ServiceState[]): void {
    const record: StateRecord = { cookie: currentNetns().cookie ?? '', services: [...services] };
    writeJsonAtomic(path.join(this.dir, STATE_FILE), record);
  }

  /** What runs here; undefined when nothing of slbctl's L7 engine is here at all. */
  async observe(): Promise<L7Observed | undefined> {
    // The full look (an nft listing, a route dump) only where L7 is in use: its directory, or slbctl's rule, is there.
    // A kernel without policy routing has no such rule: nothing to look at then.
    const ruled = async (rtnl: Rtnl) => (await rtnl.fwmarkRules(TPROXY_MARK, TPROXY_TABLE).catch(() => [])).length > 0;
    const hasDir = fs.existsSync(this.dir);
    const inUse = hasDir || (this.rtnl !== undefined && (await ruled(this.rtnl)));
    const pieces = this.rtnl && inUse ? await observeReturnPath(this.rtnl) : undefined;
    const returnPath = pieces === undefined || absent(pieces) ? undefined : complete(pieces) ? 'complete' : 'partial';
    const withPath = <T extends L7Observed>(o: T): T => (returnPath ? { ...o, returnPath } : o);
    if (!hasDir) return returnPath ? { running: false, services: [], returnPath } : undefined;
    if (!this.instance.running()) return withPath({ running: false, services: [] });
    const services = this.readState();
    let rows: StatRow[] = [];
    try {
      rows = await this.instance.runtime.stats();
    } catch {
      // No answer: the weights below count as unknown, so the plan sets them all.
    }
    const weights = new Map(rows.filter((r) => r.type === 2).map((r) => [`${r.pxname}/${r.svname}`, r.weight]));
    return withPath({
      running: true,
      services: services.map((s) => ({
        ...s,
        realServers: s.realServers.map((r) => {
          const now = weights.get(`${backendName(serviceKey(s))}/${serverName(r)}`);
          // -1: HAProxy holds another weight than slbctl set (changed by hand): a change the plan repairs.
          return { ...r, weight: now === haproxyWeight(r.weight) ? r.weight : -1 };
        }),
      })),
    });
  }

  /** Refuse, before anything changes, what this host cannot do. */
  preflight(changes: readonly L7Change[]): void {
    const missing = haproxyMissing();
    if (missing !== undefined && changes.some((c) => c.what === 'start' || c.what === 'reload')) throw new PreflightError(missing);
    // The return path marks with nftables's socket match: nft must be here (exit 3, nothing changed).
    if (changes.some((c) => c.what === 'return-path' && c.add)) requireNft();
  }

  /** The configuration for these services and the PEM files it names (start and reload check it with `haproxy -c` first). */
  private prepare(services: readonly L7ServiceState[]) {
    const models = services.map(toRenderModel);
    return { text: renderHaproxyConfig(models, this.paths), files: assemblePemFiles(models, this.paths) };
  }

  /** Make the changes; the returned function undoes them (the caller runs it when a later step fails). */
  async execute(
    changes: readonly L7Change[],
    before: readonly L7ServiceState[],
    log: (line: string) => void,
  ): Promise<() => Promise<void>> {
    const undo: (() => Promise<void>)[] = [];
    const runtime = this.instance.runtime;
    let current = [...before];
    try {
      for (const c of changes) {
        switch (c.what) {
          case 'start': {
            const { text, files } = this.prepare(c.services);
            await this.instance.start(text, files);
            this.writeState(c.services);
            undo.push(() => this.instance.stop());
            current = c.services;
            log(`haproxy: started, serving ${c.services.map(serviceKey).join(', ')}`);
            break;
          }
          case 'reload': {
            const previous = current;
            const next = this.prepare(c.services);
            await this.instance.reload(next.text, next.files);
            this.writeState(c.services);
            undo.push(async () => {
              const back = this.prepare(previous);
              await this.instance.reload(back.text, back.files);
              this.writeState(previous);
            });
            current = c.services;
            log(`haproxy: reloaded (${c.changes.join('; ')})`);
            break;
          }
          case 'set-weight': {
            const backend = backendName(serviceKey(c.service));
            const server = serverName(c);
            await runtime.setWeight(backend, server, c.to);
            if (c.from >= 0) undo.push(() => runtime.setWeight(backend, server, c.from));
            current = current.map((s) =>
              serviceKey(s) === serviceKey(c.service)
                ? {
                    ...s,
                    realServers: s.realServers.map((r) => (r.address === c.address && r.port === c.port ? { ...r, weight: c.to } : r)),
                  }
                : s,
            );
            this.writeState(current);
            log(`haproxy: ${serviceKey(c.service)} real server ${c.address}:${c.port} weight ${c.to}`);
            break;
          }
          case 'return-path': {
            const rtnl = this.rtnl;
            if (!rtnl) throw new Error('internal: the return path needs rtnetlink');
            const was = c.add ? await addReturnPath(rtnl) : await removeReturnPath(rtnl);
            undo.push(() => restoreReturnPath(rtnl, absent(was) ? was : { nft: true, rule: true, route: true }));
            log(`transparent proxy return path ${c.add ? 'added' : 'removed'}`);
            break;
          }
          case 'stop': {
            const previous = current;
            await this.instance.stop();
            undo.push(async () => {
              const back = this.prepare(previous);
              await this.instance.start(back.text, back.files);
              this.writeState(previous);
            });
            current = [];
            log('haproxy: stopped');
            break;
          }
        }
      }
    } catch (e) {
      for (const step of undo.reverse()) await step().catch((u: unknown) => log(`rollback of haproxy failed: ${(u as Error).message}`));
      if (e instanceof SlbctlError) throw e;
      throw new KernelError(`haproxy: ${(e as Error).message}`);
    }
    return async () => {
      for (const step of undo.reverse()) await step();
    };
  }

  /** The runtime API's counters (status), or undefined when no instance runs. */
  async stats(): Promise<StatRow[] | undefined> {
    if (!this.instance.running()) return undefined;
    return this.instance.runtime.stats();
  }
}
