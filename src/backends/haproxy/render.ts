// The whole haproxy.cfg of one instance, rendered from plain data. Pure: no
// I/O, the same input gives the same text byte for byte (golden files in
// test/fixtures/haproxy/ pin it). The instance (instance.ts) writes, checks
// and loads what this returns; the runtime API (runtime.ts) addresses the
// backends and servers by the names made here.
import { isIP } from 'node:net';

/** One real server. `weight` is slbctl's (0..65535); HAProxy's is 0..256, see haproxyWeight. */
export interface L7RealServer {
  address: string;
  port: number;
  weight: number;
}

export interface L7Service {
  /** slbctl's key of the service, e.g. "http/172.16.75.100:80": the frontend and backend are named from it. */
  key: string;
  name: string;
  vip: string;
  port: number;
  protocol: 'http' | 'https';
  /** fullnat: HAProxy connects from snatAddress (or the kernel's choice); transparent: from the client's own address. */
  mode: 'fullnat' | 'transparent';
  scheduler: 'rr' | 'wrr' | 'sh' | 'lc';
  snatAddress?: string;
  /** https: TLS ends at the balancer. Paths of PEM files; the instance assembles them into one file of its own (pemPathOf). */
  tls?: { certificate: string; key: string };
  cache?: { maxAgeSeconds: number; maxObjectBytes: number; totalBytes: number };
  realServers: L7RealServer[];
}

/** Where one instance keeps its files; all inside `dir`, which only root may read. */
export interface InstancePaths {
  dir: string;
  config: string;
  pidFile: string;
  runtimeSocket: string;
  masterSocket: string;
  /** Runtime state (weights, maint/drain) saved just before a reload and read back by the new worker. */
  serverStateFile: string;
}

export const HAPROXY_MAX_WEIGHT = 256;

/** How long a worker replaced by a reload may go on serving its connections. */
export const HARD_STOP_AFTER = '5m';

/**
 * slbctl's weight as HAProxy's. HAProxy takes 0..256; slbctl's weights are the
 * kernel's (0..65535). Clamped rather than scaled per service: a scale would
 * depend on the other servers' weights, so one runtime `set weight` could not
 * be computed from the one server changing. Weights up to 256 (all the lab
 * and the examples use) mean exactly what they mean to IPVS and nft; above,
 * they count as 256. 0 stays 0: no new connections, existing ones go on.
 */
export function haproxyWeight(weight: number): number {
  if (!Number.isFinite(weight) || weight <= 0) return 0;
  return Math.min(HAPROXY_MAX_WEIGHT, Math.round(weight));
}

/** A name HAProxy accepts (letters, digits, '_', '-', '.', ':'), kept to [A-Za-z0-9_] so it never needs quoting anywhere. */
function sanitize(text: string): string {
  return text.replace(/[^A-Za-z0-9]/g, '_');
}

/** Text for a comment: a line break in a name would end the comment and start config. */
function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?');
}

/** The backend of a service, as the runtime API names it (`set server <backend>/<server> ...`). */
export function backendName(key: string): string {
  return `be_${sanitize(key)}`;
}

export function frontendName(key: string): string {
  return `fe_${sanitize(key)}`;
}

function cacheName(key: string): string {
  return `cache_${sanitize(key)}`;
}

/** A real server's name, stable from its address and port so the runtime API finds it across reloads. */
export function serverName(rs: { address: string; port: number }): string {
  return `rs_${sanitize(rs.address)}_${rs.port}`;
}

/** The PEM (certificate then key) HAProxy loads for an https service, inside the instance's private directory. */
export function pemPathOf(key: string, paths: InstancePaths): string {
  return `${paths.dir}/${sanitize(key)}.pem`;
}

/** `addr:port` as HAProxy reads it: an IPv6 address needs no brackets, but the last colon must be the port's. */
function endpoint(address: string, port: number): string {
  return `${address}:${port}`;
}

const BALANCE: Record<L7Service['scheduler'], string[]> = {
  rr: ['balance roundrobin'],
  // HAProxy's roundrobin is already weighted.
  wrr: ['balance roundrobin'],
  // Consistent hashing makes the algorithm dynamic: with the default map-based
  // hash, a runtime weight change could only switch a server fully on or off.
  sh: ['balance source', 'hash-type consistent'],
  lc: ['balance leastconn'],
};

const MIB = 1024 * 1024;

function cacheSection(service: L7Service): string[] {
  const cache = service.cache;
  if (!cache) return [];
  // total-max-size is in megabytes (at least 1); HAProxy refuses an object
  // limit above half the cache, so it is held there rather than failing the check.
  const totalMegabytes = Math.max(1, Math.ceil(cache.totalBytes / MIB));
  const maxObject = Math.max(1, Math.min(Math.floor(cache.maxObjectBytes), Math.floor((totalMegabytes * MIB) / 2)));
  return [
    `cache ${cacheName(service.key)}`,
    `    total-max-size ${totalMegabytes}`,
    `    max-object-size ${maxObject}`,
    `    max-age ${Math.max(0, Math.floor(cache.maxAgeSeconds))}`,
    '',
  ];
}

function serverLine(service: L7Service, rs: L7RealServer): string {
  const words = ['server', serverName(rs), endpoint(rs.address, rs.port), 'weight', String(haproxyWeight(rs.weight))];
  // No `check`: slbctl runs its own health checks and sets each server's
  // state over the runtime API, so HAProxy's would only disagree with it.
  // The any-address of the real server's family: the kernel picks the port, usesrc the client's address.
  if (service.mode === 'transparent') words.push('source', rs.address.includes(':') ? '::' : '0.0.0.0', 'usesrc', 'clientip');
  else if (service.snatAddress) words.push('source', service.snatAddress);
  return `    ${words.join(' ')}`;
}

function serviceSections(service: L7Service, paths: InstancePaths): string[] {
  const bind = ['bind', endpoint(service.vip, service.port)];
  // usesrc clientip needs IP_TRANSPARENT on the listener as well as on the
  // outgoing socket (the replies to the client's address come back to us).
  if (service.mode === 'transparent') bind.push('transparent');
  if (service.protocol === 'https') bind.push('ssl', 'crt', pemPathOf(service.key, paths));
  const backend = backendName(service.key);
  const lines = [
    `# ${printable(service.name)} (${printable(service.key)}): ${service.protocol} ${service.mode} ${service.scheduler}`,
    `frontend ${frontendName(service.key)}`,
    `    ${bind.join(' ')}`,
    `    default_backend ${backend}`,
    '',
    `backend ${backend}`,
    ...BALANCE[service.scheduler].map((l) => `    ${l}`),
  ];
  if (service.cache) {
    lines.push(`    http-request cache-use ${cacheName(service.key)}`, `    http-response cache-store ${cacheName(service.key)}`);
  }
  lines.push(...service.realServers.map((rs) => serverLine(service, rs)), '');
  return lines;
}

function assertEndpoint(what: string, address: string, port?: number): void {
  if (isIP(address) === 0) throw new Error(`haproxy: ${what} ${JSON.stringify(address)} is not an IP address`);
  if (port !== undefined && !(Number.isInteger(port) && port >= 1 && port <= 65535))
    throw new Error(`haproxy: ${what} ${address} has port ${port}, not 1..65535`);
}

/**
 * Every word that reaches the config is checked here: an address or port that
 * is not one could otherwise add keywords of its own. Two keys, or two servers
 * of one service, that would get the same name are refused here too: HAProxy
 * would refuse them less clearly.
 */
function assertRenderable(services: readonly L7Service[]): void {
  const backends = new Map<string, string>();
  for (const service of services) {
    assertEndpoint(`service ${service.key}: VIP`, service.vip, service.port);
    if (service.snatAddress !== undefined) assertEndpoint(`service ${service.key}: SNAT address`, service.snatAddress);
    for (const rs of service.realServers) assertEndpoint(`service ${service.key}: real server`, rs.address, rs.port);
    const name = backendName(service.key);
    const other = backends.get(name);
    if (other !== undefined) throw new Error(`haproxy: services ${other} and ${service.key} would both be named ${name}`);
    backends.set(name, service.key);
    const servers = new Set<string>();
    for (const rs of service.realServers) {
      const server = serverName(rs);
      if (servers.has(server)) throw new Error(`haproxy: service ${service.key} lists real server ${endpoint(rs.address, rs.port)} twice`);
      servers.add(server);
    }
  }
}

/**
 * The complete haproxy.cfg for these services. Services are rendered in key
 * order so the same set always gives the same text. With no services the
 * text is valid but HAProxy will not start (it has nothing to listen on):
 * stop the instance instead.
 */
export function renderHaproxyConfig(services: readonly L7Service[], paths: InstancePaths): string {
  assertRenderable(services);
  const sorted = [...services].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const lines = [
    '# Rendered by slbctl: edits are replaced at the next apply.',
    'global',
    '    master-worker',
    // expose-fd listeners lets a new worker take the listening sockets from
    // the old one at a reload, so no connection is refused meanwhile.
    `    stats socket ${paths.runtimeSocket} mode 600 level admin expose-fd listeners`,
    `    server-state-file ${paths.serverStateFile}`,
    // A worker replaced by a reload finishes its connections, but for at most
    // this long: a client that never closes cannot keep old workers (and their
    // memory) alive across every later reload.
    `    hard-stop-after ${HARD_STOP_AFTER}`,
    '',
    'defaults',
    // HTTP mode: HAProxy connects to a real server only once a request has arrived, and picks it per request.
    '    mode http',
    // The runtime state slbctl set (maint, drain, weights) survives a reload;
    // HAProxy applies a saved weight only where the config's did not change.
    '    load-server-state-from-file global',
    '    timeout connect 5s',
    '    timeout client 60s',
    '    timeout server 60s',
    '    timeout http-request 10s',
    '',
  ];
  for (const service of sorted) lines.push(...cacheSection(service));
  for (const service of sorted) lines.push(...serviceSections(service, paths));
  return lines.join('\n');
}

/** The files of an instance under its directory. */
export function instancePaths(dir: string): InstancePaths {
  return {
    dir,
    config: `${dir}/haproxy.cfg`,
    pidFile: `${dir}/haproxy.pid`,
    runtimeSocket: `${dir}/runtime.sock`,
    masterSocket: `${dir}/master.sock`,
    serverStateFile: `${dir}/server-state`,
  };
}
