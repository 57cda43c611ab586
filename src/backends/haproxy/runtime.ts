// A small client of HAProxy's runtime API (the `stats socket` of the config)
// and of the master CLI (`-S`): one command per connection, which is what
// both sockets do by default (they answer, then close). Small changes go
// through here without a reload: a real server's weight and state.
import * as net from 'node:net';
import { haproxyWeight } from './render';

export type ServerState = 'ready' | 'drain' | 'maint';

/** One row of `show stat`: a frontend, a backend or a server. Counters are numbers; absent fields are undefined. */
export interface StatRow {
  /** The proxy's name (fe_…, be_…). */
  pxname: string;
  /** FRONTEND, BACKEND, or the server's name (rs_…). */
  svname: string;
  /** UP, DOWN, MAINT, DRAIN, no check, OPEN… as HAProxy prints it. */
  status: string;
  /** Sessions now, and in total. */
  scur: number | undefined;
  stot: number | undefined;
  /** Bytes in (from clients) and out (to clients). */
  bin: number | undefined;
  bout: number | undefined;
  weight: number | undefined;
  /** 0 frontend, 1 backend, 2 server, 3 listener. */
  type: number | undefined;
  /** Every column by its header name, as text, for what the typed fields leave out. */
  fields: Record<string, string>;
}

export class RuntimeApiError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RuntimeApiError';
  }
}

/** Send one command line to a unix socket and return everything it answers until it closes. */
export function socketCommand(socketPath: string, cmd: string, timeoutMs = 5000): Promise<string> {
  // A line break would smuggle in a second command.
  if (/[\r\n]/.test(cmd))
    return Promise.reject(new RuntimeApiError(`haproxy ${socketPath}: a command is one line: ${JSON.stringify(cmd)}`));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = net.createConnection(socketPath);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new RuntimeApiError(`haproxy ${socketPath}: no complete answer to ${JSON.stringify(cmd)} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('connect', () => socket.end(`${cmd}\n`));
    socket.on('data', (b: Buffer) => chunks.push(b));
    socket.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new RuntimeApiError(`haproxy ${socketPath}: ${JSON.stringify(cmd)}: ${e.code ?? e.message}`));
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString());
    });
  });
}

function toNumber(text: string | undefined): number | undefined {
  if (text === undefined || text === '') return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

/**
 * `show stat` CSV into rows. The header line starts with "# "; a line with
 * fewer columns than the header, or without a proxy and server name, is
 * skipped rather than trusted (nothing here throws on what HAProxy prints).
 */
export function parseStat(csv: string): StatRow[] {
  const lines = csv.split('\n');
  const headerLine = lines.find((l) => l.startsWith('# '));
  if (!headerLine) return [];
  const header = headerLine.slice(2).split(',');
  const rows: StatRow[] = [];
  for (const line of lines) {
    if (line === '' || line.startsWith('#')) continue;
    const cells = line.split(',');
    if (cells.length < header.length - 1) continue;
    const fields: Record<string, string> = {};
    header.forEach((name, i) => {
      if (name !== '') fields[name] = cells[i] ?? '';
    });
    const pxname = fields.pxname;
    const svname = fields.svname;
    if (!pxname || !svname) continue;
    rows.push({
      pxname,
      svname,
      status: fields.status ?? '',
      scur: toNumber(fields.scur),
      stot: toNumber(fields.stot),
      bin: toNumber(fields.bin),
      bout: toNumber(fields.bout),
      weight: toNumber(fields.weight),
      type: toNumber(fields.type),
      fields,
    });
  }
  return rows;
}

/** Names HAProxy would take as separators or keywords are refused before they reach the socket. */
function assertName(what: string, name: string): void {
  if (!/^[A-Za-z0-9_.:-]+$/.test(name)) throw new RuntimeApiError(`haproxy runtime API: bad ${what} name ${JSON.stringify(name)}`);
}

export class RuntimeClient {
  constructor(readonly socketPath: string) {}

  /** One command; the answer as HAProxy printed it. */
  command(cmd: string): Promise<string> {
    return socketCommand(this.socketPath, cmd);
  }

  /**
   * A command whose success is an empty answer (set server …): anything else
   * is HAProxy's complaint ("No such server.", "Require 'backend/server'.").
   */
  private async expectSilent(cmd: string): Promise<void> {
    const answer = (await this.command(cmd)).trim();
    if (answer !== '') throw new RuntimeApiError(`haproxy runtime API: ${cmd}: ${answer.split('\n').join(' / ')}`);
  }

  /** slbctl's weight (clamped to HAProxy's 0..256 as in the config). */
  setWeight(backend: string, server: string, weight: number): Promise<void> {
    assertName('backend', backend);
    assertName('server', server);
    return this.expectSilent(`set server ${backend}/${server} weight ${haproxyWeight(weight)}`);
  }

  /** ready: takes traffic; drain: keeps its sessions, gets no new ones; maint: out, as if removed. */
  setState(backend: string, server: string, state: ServerState): Promise<void> {
    assertName('backend', backend);
    assertName('server', server);
    return this.expectSilent(`set server ${backend}/${server} state ${state}`);
  }

  async stats(): Promise<StatRow[]> {
    return parseStat(await this.command('show stat'));
  }

  /** `show info` as key/value pairs (Pid, Uptime_sec, CurrConns…). */
  async info(): Promise<Record<string, string>> {
    const info: Record<string, string> = {};
    for (const line of (await this.command('show info')).split('\n')) {
      const i = line.indexOf(':');
      if (i > 0) info[line.slice(0, i).trim()] = line.slice(i + 1).trim();
    }
    return info;
  }

  /** The serving worker's pid. */
  async workerPid(): Promise<number | undefined> {
    return toNumber((await this.info()).Pid);
  }
}

/** One process in the master CLI's `show proc`. */
export interface ProcEntry {
  pid: number;
  type: string;
  reloads: number | undefined;
  /** Listed under "# old workers": finishing its connections after a reload. */
  old: boolean;
}

/**
 * The master CLI's `show proc`: the master, its current workers, and the old
 * workers still finishing connections. The section headers ("# workers",
 * "# old workers") say which is which; lines that are not a pid row are skipped.
 */
export function parseShowProc(text: string): ProcEntry[] {
  const entries: ProcEntry[] = [];
  let old = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) {
      if (/old workers/i.test(line)) old = true;
      else if (/workers/i.test(line)) old = false;
      continue;
    }
    const [pid, type, reloads] = line.trim().split(/\s+/);
    const n = toNumber(pid);
    if (n === undefined || !Number.isInteger(n) || n <= 0 || !type) continue;
    entries.push({ pid: n, type, reloads: toNumber(reloads), old });
  }
  return entries;
}
