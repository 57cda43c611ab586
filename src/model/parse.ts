// Config text -> validated Config, or every error with its path in the file.
// Pure: the caller reads the file.
import { isIPv4, isNetmask, nonUnicastReason } from './ip';
import { HEALTH_KEYS, HealthCheck, MAX_DURATION_MS, checkHealth } from './health';
import {
  BACKENDS,
  BackendChoice,
  CONNTRACK_SYSCTLS,
  Config,
  ConntrackTimeouts,
  ENCAPSULATIONS,
  Encapsulation,
  MODES,
  Mode,
  SERVICE_PROTOCOLS,
  ServiceProtocol,
  L7_SCHEDULERS,
  CacheSettings,
  TlsFiles,
  isL7,
  transportKey,
  RealServer,
  SCHEDULERS,
  SCHEDULER_ALIASES,
  FAILURE_POLICIES,
  FailurePolicy,
  Persistence,
  MaglevSettings,
  MAGLEV_DEFAULTS,
  Scheduler,
  Service,
  VIP_PRESENCE,
  VIP_FORMS,
  VipForm,
  VipPresence,
  ASN_RANGE,
  AS_TRANS,
  BGP_DEFAULTS,
  BgpPeer,
  BgpSettings,
  HaSettings,
  SYNC_ENGINES,
  SyncSettings,
  IPVS_SYNC_DEFAULTS,
  VRRP_DEFAULTS,
  VrrpSettings,
  realServerKey,
  serviceKey,
} from './types';

export interface ConfigIssue {
  /** Path in the config, e.g. "services[0].realServers[1].address". */
  path: string;
  message: string;
  /** 1-based line and column in the file, when known. */
  line?: number;
  column?: number;
}

export type ParseResult = { ok: true; config: Config } | { ok: false; issues: ConfigIssue[] };

export type PathPart = string | number;

const SERVICE_KEYS = [
  'name',
  'vip',
  'port',
  'protocol',
  'mode',
  'scheduler',
  'interface',
  'vipAlreadyPresent',
  'snatAddress',
  'snatAddresses',
  'snatPorts',
  'encapsulation',
  'persistence',
  'maglev',
  'healthCheck',
  'failurePolicy',
  'sorryServer',
  'tls',
  'cache',
  'realServers',
];
const TLS_KEYS = ['certificate', 'key'];
const CACHE_KEYS = ['maxAge', 'maxObjectSize', 'totalSize'];
/** HAProxy sizes a cache in whole MiB, at most 4095. */
const CACHE_MIN_BYTES = 1024 * 1024;
const CACHE_MAX_BYTES = 4095 * 1024 * 1024;
const MAX_CACHE_AGE_S = 86400;
const SORRY_KEYS = ['address', 'port'];
const PERSISTENCE_KEYS = ['timeout', 'netmask'];
const MAGLEV_KEYS = ['size', 'seed'];
/** A Maglev table (mh on nftables) of at least 11 entries and at most 65521, the largest prime below 2^16: one nft map element each. */
const MAGLEV_MIN_SIZE = 11;
const MAGLEV_MAX_SIZE = 65521;
const MAX_U32 = 0xffffffff;

function isPrime(n: number): boolean {
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return n >= 2;
}
const REAL_SERVER_KEYS = ['address', 'port', 'weight'];
const TOP_KEYS = ['backend', 'vipAlreadyPresent', 'vipAs', 'conntrack', 'services', 'ha'];
const HA_KEYS = ['bgp', 'vrrp', 'sync'];
const VRRP_KEYS = ['interface', 'virtualRouterId', 'priority', 'peers', 'advertInterval', 'addresses'];
const SYNC_KEYS = ['engine', 'interface', 'peer', 'syncId', 'group', 'port'];
/** The ha.sync keys each engine takes besides engine and interface. */
const SYNC_ENGINE_KEYS = { conntrackd: ['peer'], ipvs: ['syncId', 'group', 'port'] } as const;
/** VRRPv3 counts the advert interval in centiseconds, in 12 bits. */
const ADVERT_MS = { min: 10, max: 40950 } as const;
const BGP_KEYS = ['asn', 'peers', 'routerId', 'bfd', 'holdTime', 'balancers'];
const BGP_PEER_KEYS = ['address', 'asn'];
/** More source addresses than this is a typo, not a pool: each one already gives every real server 64,512 ports. */
export const MAX_SNAT_ADDRESSES = 64;
const MAX_CONNTRACK_TIMEOUT_S = 86400;
const MAX_PERSISTENCE_S = MAX_DURATION_MS / 1000;

/** The fix for each kind of address, said in the error when it cannot be one. */
const ADDRESS_ROLES = {
  vip: 'use one unicast address that clients can reach as the VIP',
  realServer: "use the real server's own unicast address",
  sorryServer: "use the sorry server's own unicast address",
  source: 'use a unicast address of this host that faces the real servers',
  peer: "use the router's own unicast address on a subnet of this host",
  routerId: "use one of this balancer's own unicast addresses",
  balancer: "use the other balancer's own unicast address",
  floating: 'use one unicast address, optionally with a prefix length (address/24)',
} as const;

export function formatPath(parts: readonly PathPart[]): string {
  return parts.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

class Checker {
  readonly issues: ConfigIssue[] = [];
  constructor(private readonly locate: (path: PathPart[]) => { line: number; column: number } | undefined) {}

  fail(path: PathPart[], message: string): void {
    const where = this.locate(path);
    this.issues.push({ path: formatPath(path), message, ...(where ?? {}) });
  }

  /** `check(value)`, or "is required: what" when the key is absent. */
  required<T>(value: unknown, path: PathPart[], what: string, check: (v: unknown) => T | undefined): T | undefined {
    if (value !== undefined) return check(value);
    this.fail(path, `is required: ${what}`);
    return undefined;
  }

  unknownKeys(obj: Record<string, unknown>, allowed: string[], path: PathPart[]): void {
    for (const key of Object.keys(obj)) {
      if (!allowed.includes(key)) this.fail([...path, key], `unknown key; allowed keys are ${allowed.join(', ')}`);
    }
  }

  ipv4(value: unknown, path: PathPart[]): string | undefined {
    if (typeof value !== 'string' || !isIPv4(value)) {
      this.fail(path, `${JSON.stringify(value)} is not an IPv4 address`);
      return undefined;
    }
    return value;
  }

  /** An address that names one host: a VIP, a real server, a source address. */
  hostAddress(value: unknown, path: PathPart[], role: keyof typeof ADDRESS_ROLES): string | undefined {
    const address = this.ipv4(value, path);
    const reason = address === undefined ? undefined : nonUnicastReason(address);
    if (reason === undefined) return address;
    this.fail(path, `${address} is ${reason}; ${ADDRESS_ROLES[role]}`);
    return undefined;
  }

  port(value: unknown, path: PathPart[]): number | undefined {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) {
      this.fail(path, `${JSON.stringify(value)} is not a port number (1-65535)`);
      return undefined;
    }
    return value;
  }

  oneOf<T extends string>(
    value: unknown,
    allowed: readonly T[],
    path: PathPart[],
    what: string,
    aliases: Record<string, T> = {},
  ): T | undefined {
    // Own properties only: 'constructor' or '__proto__' must not pass as an alias.
    if (typeof value === 'string' && Object.hasOwn(aliases, value)) return aliases[value];
    if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
    this.fail(path, `${JSON.stringify(value)} is not a known ${what}; use one of ${[...allowed, ...Object.keys(aliases)].join(', ')}`);
    return undefined;
  }
}

function checkRealServer(
  c: Checker,
  raw: unknown,
  path: PathPart[],
  servicePort: number | undefined,
  mode: Mode | undefined,
): RealServer | undefined {
  if (!isRecord(raw)) {
    c.fail(path, 'must be a mapping with address, port and weight');
    return undefined;
  }
  c.unknownKeys(raw, REAL_SERVER_KEYS, path);
  const address =
    raw.address === undefined
      ? (c.fail([...path, 'address'], 'is required'), undefined)
      : c.hostAddress(raw.address, [...path, 'address'], 'realServer');
  let port = servicePort;
  if (raw.port !== undefined) {
    port = c.port(raw.port, [...path, 'port']);
    if (mode === 'dsr' && port !== undefined && servicePort !== undefined && port !== servicePort) {
      c.fail(
        [...path, 'port'],
        `is ${port} but the service port is ${servicePort}: direct server return forwards the packet unchanged, so the real server must listen on the service port; drop the port or set it to ${servicePort}`,
      );
    }
  }
  let weight = 1;
  if (raw.weight !== undefined) {
    if (typeof raw.weight !== 'number' || !Number.isInteger(raw.weight) || raw.weight < 0 || raw.weight > 65535) {
      c.fail([...path, 'weight'], `${JSON.stringify(raw.weight)} is not a weight (an integer from 0 to 65535)`);
    } else weight = raw.weight;
  }
  if (address === undefined || port === undefined) return undefined;
  return { address, port, weight };
}

function checkTls(c: Checker, raw: unknown, path: PathPart[], protocol: ServiceProtocol | undefined): TlsFiles | undefined {
  if (raw === undefined) {
    if (protocol === 'https') c.fail(path, 'is required for protocol https: certificate and key (PEM files) the balancer presents');
    return undefined;
  }
  if (protocol !== undefined && protocol !== 'https') {
    c.fail(path, `only applies to protocol https (this service is ${protocol})`);
    return undefined;
  }
  if (!isRecord(raw)) {
    c.fail(path, 'must be a mapping with certificate and key (paths of PEM files)');
    return undefined;
  }
  c.unknownKeys(raw, TLS_KEYS, path);
  const file = (key: 'certificate' | 'key'): string | undefined => {
    const v = raw[key];
    if (typeof v === 'string' && v.length > 0 && !v.includes('\n') && !v.includes('\0')) return v;
    c.fail([...path, key], v === undefined ? 'is required: the path of a PEM file' : `${JSON.stringify(v)} is not a file path`);
    return undefined;
  };
  const certificate = file('certificate');
  const key = file('key');
  return certificate !== undefined && key !== undefined ? { certificate, key } : undefined;
}

/** A size in bytes: a whole number, or one with k, m or g (powers of 1024), e.g. "64m". */
function parseSize(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^(\d{1,12})\s*([kmg]?)i?b?$/i.exec(v.trim());
  if (!m) return undefined;
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(m[2] ?? '').toLowerCase()] ?? 1;
  return Number(m[1]) * unit;
}

function checkCache(c: Checker, raw: unknown, path: PathPart[], protocol: ServiceProtocol | undefined): CacheSettings | undefined {
  if (raw === undefined) return undefined;
  if (protocol !== undefined && !isL7(protocol)) {
    c.fail(path, `only applies to protocol http or https (this service is ${protocol}): an L4 balancer never reads the response`);
    return undefined;
  }
  if (!isRecord(raw)) {
    c.fail(path, 'must be a mapping with maxAge (seconds), maxObjectSize and totalSize (bytes, or e.g. "64m")');
    return undefined;
  }
  c.unknownKeys(raw, CACHE_KEYS, path);
  const maxAge = raw.maxAge === undefined ? 60 : raw.maxAge;
  const ageOk = typeof maxAge === 'number' && Number.isInteger(maxAge) && maxAge >= 1 && maxAge <= MAX_CACHE_AGE_S;
  if (!ageOk) c.fail([...path, 'maxAge'], `${JSON.stringify(maxAge)} is not a cache age (whole seconds, 1 to ${MAX_CACHE_AGE_S})`);
  const totalSize = raw.totalSize === undefined ? 64 * 1024 * 1024 : parseSize(raw.totalSize);
  const totalOk = totalSize !== undefined && totalSize >= CACHE_MIN_BYTES && totalSize <= CACHE_MAX_BYTES;
  if (!totalOk)
    c.fail([...path, 'totalSize'], `${JSON.stringify(raw.totalSize)} is not a cache size (1m to 4095m: HAProxy sizes its cache in MiB)`);
  const maxObjectSize = raw.maxObjectSize === undefined ? 1024 * 1024 : parseSize(raw.maxObjectSize);
  const objectOk = maxObjectSize !== undefined && maxObjectSize >= 1;
  if (!objectOk) c.fail([...path, 'maxObjectSize'], `${JSON.stringify(raw.maxObjectSize)} is not an object size (bytes, or e.g. "1m")`);
  else if (totalOk && maxObjectSize > totalSize / 2)
    c.fail([...path, 'maxObjectSize'], `is ${maxObjectSize} bytes, over half the cache (${totalSize} bytes); HAProxy refuses that`);
  if (!ageOk || !totalOk || !objectOk || maxObjectSize > totalSize / 2) return undefined;
  return { maxAge, maxObjectSize, totalSize };
}

/**
 * fullnat's source NAT: one address (snatAddress), or a pool (snatAddresses)
 * whose connections are spread by a flow hash, and the source-port range.
 */
function checkSource(
  c: Checker,
  raw: Record<string, unknown>,
  path: PathPart[],
  s: { mode: Mode | undefined; protocol: ServiceProtocol | undefined; vip: string | undefined },
): { address?: string; pool?: string[]; ports?: string } {
  const out: { address?: string; pool?: string[]; ports?: string } = {};
  const onlyFullnat = (key: string) => {
    if (s.mode !== undefined && s.mode !== 'fullnat') c.fail([...path, key], `only applies to mode fullnat (this service is ${s.mode})`);
  };
  // A pool's address other than the VIP: the pool is for spreading ports, and the VIP's are the clients'.
  const notVip = (address: string | undefined, at: PathPart[]) => {
    if (address !== undefined && address === s.vip)
      c.fail(at, `${address} is the VIP itself; use an address of this host that faces the real servers`);
    return address !== undefined && address !== s.vip ? address : undefined;
  };
  if (raw.snatAddress !== undefined) {
    // One address may be the VIP (replies come back to this host all the same), as it always could.
    out.address = c.hostAddress(raw.snatAddress, [...path, 'snatAddress'], 'source');
    onlyFullnat('snatAddress');
  }
  if (raw.snatAddresses !== undefined) {
    const pp = [...path, 'snatAddresses'];
    onlyFullnat('snatAddresses');
    if (raw.snatAddress !== undefined) c.fail(pp, 'is a pool and snatAddress is one address; set one of them, not both');
    else if (!Array.isArray(raw.snatAddresses) || raw.snatAddresses.length === 0 || raw.snatAddresses.length > MAX_SNAT_ADDRESSES)
      c.fail(pp, `must be a list of 1 to ${MAX_SNAT_ADDRESSES} addresses of this host that face the real servers`);
    else {
      const seen = new Map<string, number>();
      const pool: string[] = [];
      raw.snatAddresses.forEach((a, i) => {
        const address = notVip(c.hostAddress(a, [...pp, i], 'source'), [...pp, i]);
        if (address === undefined) return;
        const first = seen.get(address);
        if (first !== undefined) c.fail([...pp, i], `${address} duplicates snatAddresses[${first}]`);
        else seen.set(address, i);
        pool.push(address);
      });
      if (pool.length === raw.snatAddresses.length && seen.size === pool.length) {
        out.address = pool[0];
        if (pool.length > 1) out.pool = pool;
      }
      if (pool.length > 1 && s.protocol !== undefined && isL7(s.protocol))
        c.fail(pp, `the L7 engine (HAProxy) connects from one address; for protocol ${s.protocol} use snatAddress`);
    }
  }
  if (raw.snatPorts !== undefined) {
    const pp = [...path, 'snatPorts'];
    onlyFullnat('snatPorts');
    const m = typeof raw.snatPorts === 'string' ? /^(\d{1,5})-(\d{1,5})$/.exec(raw.snatPorts.trim()) : null;
    const low = m ? Number(m[1]) : NaN;
    const high = m ? Number(m[2]) : NaN;
    if (!(low >= 1 && high <= 65535 && low < high))
      c.fail(pp, `${JSON.stringify(raw.snatPorts)} is not a port range; write "low-high" with 1 <= low < high <= 65535, e.g. "1024-65535"`);
    else if (s.protocol !== undefined && isL7(s.protocol))
      c.fail(pp, `is the kernel's source NAT; the L7 engine (HAProxy) picks its own ports for protocol ${s.protocol}`);
    else out.ports = `${low}-${high}`;
  }
  return out;
}

/** conntrack: the timeouts of the balancer's namespace, whole seconds. */
function checkConntrack(c: Checker, raw: unknown): ConntrackTimeouts | undefined {
  if (raw === undefined) return undefined;
  const keys = Object.keys(CONNTRACK_SYSCTLS) as (keyof ConntrackTimeouts)[];
  if (!isRecord(raw)) {
    c.fail(['conntrack'], `must be a mapping of timeouts in seconds and tcpLoose (${keys.join(', ')})`);
    return undefined;
  }
  c.unknownKeys(raw, keys, ['conntrack']);
  const out: ConntrackTimeouts = {};
  for (const key of keys) {
    const v = raw[key];
    if (v === undefined) continue;
    if (key === 'tcpLoose') {
      if (typeof v === 'boolean') out.tcpLoose = v;
      else c.fail(['conntrack', key], `${JSON.stringify(v)} is not true or false`);
      continue;
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_CONNTRACK_TIMEOUT_S)
      c.fail(['conntrack', key], `${JSON.stringify(v)} is not a timeout (whole seconds, 1 to ${MAX_CONNTRACK_TIMEOUT_S})`);
    else out[key] = v;
  }
  return out;
}

function checkService(c: Checker, raw: unknown, path: PathPart[], vipPresence: VipPresence): Service | undefined {
  if (!isRecord(raw)) {
    c.fail(path, 'must be a mapping (vip, port, protocol, mode, scheduler, realServers)');
    return undefined;
  }
  c.unknownKeys(raw, SERVICE_KEYS, path);
  const vip =
    raw.vip === undefined ? (c.fail([...path, 'vip'], 'is required'), undefined) : c.hostAddress(raw.vip, [...path, 'vip'], 'vip');
  const port = raw.port === undefined ? (c.fail([...path, 'port'], 'is required'), undefined) : c.port(raw.port, [...path, 'port']);
  const protocol =
    raw.protocol === undefined ? 'tcp' : c.oneOf<ServiceProtocol>(raw.protocol, SERVICE_PROTOCOLS, [...path, 'protocol'], 'protocol');
  const l7 = protocol !== undefined && isL7(protocol);
  const mode =
    raw.mode === undefined
      ? (c.fail([...path, 'mode'], `is required; use one of ${MODES.join(', ')}`), undefined)
      : c.oneOf<Mode>(raw.mode, MODES, [...path, 'mode'], 'mode');
  const scheduler =
    raw.scheduler === undefined
      ? 'rr'
      : c.oneOf<Scheduler>(raw.scheduler, SCHEDULERS, [...path, 'scheduler'], 'scheduler', SCHEDULER_ALIASES);
  if (l7 && mode === 'dsr')
    c.fail(
      [...path, 'mode'],
      `dsr cannot serve protocol ${protocol}: direct server return is L4 (the balancer never sees the reply, so it cannot proxy HTTP); use mode fullnat or transparent, or protocol tcp`,
    );
  if (l7 && scheduler !== undefined && !(L7_SCHEDULERS as readonly string[]).includes(scheduler))
    c.fail([...path, 'scheduler'], `${scheduler} is not a scheduler of the L7 engine; use one of ${L7_SCHEDULERS.join(', ')}`);
  const tls = checkTls(c, raw.tls, [...path, 'tls'], protocol);
  const cache = checkCache(c, raw.cache, [...path, 'cache'], protocol);
  let name: string | undefined;
  if (raw.name !== undefined) {
    // 32 keeps the service rule's comment (settings read back from the kernel) under nft's 128 bytes.
    if (typeof raw.name !== 'string' || !/^[A-Za-z0-9_.-]{1,32}$/.test(raw.name))
      c.fail([...path, 'name'], 'must be 1-32 characters of letters, digits, "_", "." or "-"');
    else name = raw.name;
  }
  let iface: string | undefined;
  if (raw.interface !== undefined) {
    // Names nft can use in a chain name (Linux allows more, e.g. '@', which nft rejects).
    if (typeof raw.interface !== 'string' || !/^[A-Za-z0-9_.-]{1,15}$/.test(raw.interface))
      c.fail([...path, 'interface'], `${JSON.stringify(raw.interface)} is not an interface name`);
    else iface = raw.interface;
  }
  const snat = checkSource(c, raw, path, { mode, protocol, vip });
  let encapsulation: Encapsulation | undefined;
  if (raw.encapsulation !== undefined) {
    encapsulation = c.oneOf<Encapsulation>(raw.encapsulation, ENCAPSULATIONS, [...path, 'encapsulation'], 'encapsulation');
    if (l7 && encapsulation === 'ipip') c.fail([...path, 'encapsulation'], `ipip is L4 (dsr); protocol ${protocol} is proxied`);
    if (encapsulation === 'ipip' && mode !== undefined && mode !== 'dsr')
      c.fail([...path, 'encapsulation'], `ipip only applies to mode dsr (this service is ${mode})`);
  }
  let persistence: Persistence | undefined;
  if (raw.persistence !== undefined && l7)
    c.fail([...path, 'persistence'], `is IPVS's; for protocol ${protocol}, scheduler sh keeps a client on one real server`);
  else if (raw.persistence !== undefined) {
    const pp = [...path, 'persistence'];
    if (!isRecord(raw.persistence)) c.fail(pp, 'must be a mapping with timeout (seconds) and optionally netmask');
    else {
      c.unknownKeys(raw.persistence, PERSISTENCE_KEYS, pp);
      const t = raw.persistence.timeout;
      const timeoutOk = typeof t === 'number' && Number.isInteger(t) && t >= 1 && t <= MAX_PERSISTENCE_S;
      if (!timeoutOk)
        c.fail(
          [...pp, 'timeout'],
          `${JSON.stringify(t)} is not a persistence timeout (whole seconds, 1 to ${MAX_PERSISTENCE_S}: at most one day)`,
        );
      const netmask = raw.persistence.netmask === undefined ? '255.255.255.255' : c.ipv4(raw.persistence.netmask, [...pp, 'netmask']);
      if (netmask !== undefined && !isNetmask(netmask))
        c.fail([...pp, 'netmask'], `${netmask} is not a netmask (contiguous ones, e.g. 255.255.255.0)`);
      if (timeoutOk && netmask !== undefined && isNetmask(netmask)) persistence = { timeout: t, netmask };
    }
  }
  let maglev: MaglevSettings | undefined;
  if (raw.maglev !== undefined) {
    const mp = [...path, 'maglev'];
    const count = Array.isArray(raw.realServers) ? raw.realServers.length : 0;
    if (scheduler !== undefined && scheduler !== 'mh') c.fail(mp, `only applies to scheduler mh (this service is ${scheduler})`);
    else if (!isRecord(raw.maglev)) c.fail(mp, 'must be a mapping with size (a prime) and seed (a 32-bit unsigned number)');
    else {
      c.unknownKeys(raw.maglev, MAGLEV_KEYS, mp);
      const size = raw.maglev.size ?? MAGLEV_DEFAULTS.size;
      const seed = raw.maglev.seed ?? MAGLEV_DEFAULTS.seed;
      const sizeOk =
        typeof size === 'number' && Number.isInteger(size) && size >= MAGLEV_MIN_SIZE && size <= MAGLEV_MAX_SIZE && isPrime(size);
      if (!sizeOk)
        c.fail(
          [...mp, 'size'],
          `${JSON.stringify(size)} is not a Maglev table size (a prime from ${MAGLEV_MIN_SIZE} to ${MAGLEV_MAX_SIZE}, e.g. 1021)`,
        );
      else if (size < count)
        c.fail([...mp, 'size'], `${size} is smaller than the service's ${count} real servers: some would get no entry`);
      const seedOk = typeof seed === 'number' && Number.isInteger(seed) && seed >= 0 && seed <= MAX_U32;
      if (!seedOk) c.fail([...mp, 'seed'], `${JSON.stringify(seed)} is not a hash seed (a whole number from 0 to ${MAX_U32}, e.g. 0x51b)`);
      if (sizeOk && size >= count && seedOk) maglev = { size, seed };
    }
  }
  let healthCheck: HealthCheck | undefined;
  if (raw.healthCheck !== undefined) {
    const hp = [...path, 'healthCheck'];
    if (!isRecord(raw.healthCheck)) c.fail(hp, 'must be a mapping (type, interval, timeout, rise, fall …)');
    else {
      c.unknownKeys(raw.healthCheck, HEALTH_KEYS, hp);
      healthCheck = checkHealth(raw.healthCheck, (key, message) => c.fail(key ? [...hp, key] : hp, message));
    }
  }
  const presence =
    raw.vipAlreadyPresent === undefined
      ? vipPresence
      : c.oneOf<VipPresence>(raw.vipAlreadyPresent, VIP_PRESENCE, [...path, 'vipAlreadyPresent'], 'vipAlreadyPresent setting');
  const failurePolicy =
    raw.failurePolicy === undefined
      ? undefined
      : c.oneOf<FailurePolicy>(raw.failurePolicy, FAILURE_POLICIES, [...path, 'failurePolicy'], 'failure policy');
  if (failurePolicy !== undefined && raw.healthCheck === undefined)
    c.fail([...path, 'failurePolicy'], 'needs a healthCheck: without one, no real server ever fails');
  let sorryServer: { address: string; port: number } | undefined;
  if (raw.sorryServer !== undefined) {
    const sp = [...path, 'sorryServer'];
    if (!isRecord(raw.sorryServer)) c.fail(sp, 'must be a mapping with address and optionally port');
    else {
      c.unknownKeys(raw.sorryServer, SORRY_KEYS, sp);
      const address =
        raw.sorryServer.address === undefined
          ? (c.fail([...sp, 'address'], 'is required'), undefined)
          : c.hostAddress(raw.sorryServer.address, [...sp, 'address'], 'sorryServer');
      const sorryPort = raw.sorryServer.port === undefined ? port : c.port(raw.sorryServer.port, [...sp, 'port']);
      if (mode === 'dsr' && sorryPort !== undefined && port !== undefined && sorryPort !== port)
        c.fail([...sp, 'port'], `is ${sorryPort} but the service port is ${port}: direct server return cannot change the port`);
      if (raw.healthCheck === undefined) c.fail(sp, 'needs a healthCheck: the sorry server serves when every real server is down');
      if (address !== undefined && sorryPort !== undefined) sorryServer = { address, port: sorryPort };
    }
  }
  const realServers: RealServer[] = [];
  if (!Array.isArray(raw.realServers) || raw.realServers.length === 0) {
    c.fail([...path, 'realServers'], 'is required: a list of at least one real server');
  } else {
    const seen = new Map<string, number>();
    raw.realServers.forEach((rs, i) => {
      const r = checkRealServer(c, rs, [...path, 'realServers', i], port, mode);
      if (!r) return;
      const key = realServerKey(r);
      const first = seen.get(key);
      if (first !== undefined) c.fail([...path, 'realServers', i], `duplicates realServers[${first}] (${key})`);
      else seen.set(key, i);
      if (vip !== undefined && r.address === vip) c.fail([...path, 'realServers', i, 'address'], 'is the VIP itself');
      realServers.push(r);
    });
  }
  if (vip === undefined || port === undefined || protocol === undefined || mode === undefined || scheduler === undefined) return undefined;
  const service: Service = { name: name ?? serviceKey({ protocol, vip, port }), vip, port, protocol, mode, scheduler, realServers };
  if (iface !== undefined) service.interface = iface;
  if (snat.address !== undefined) service.snatAddress = snat.address;
  if (snat.pool !== undefined) service.snatPool = snat.pool;
  if (snat.ports !== undefined) service.snatPorts = snat.ports;
  if (encapsulation === 'ipip') service.encapsulation = encapsulation;
  if (tls) service.tls = tls;
  if (cache) service.cache = cache;
  if (persistence) service.persistence = persistence;
  if (maglev) service.maglev = maglev;
  if (healthCheck) service.healthCheck = healthCheck;
  if (failurePolicy) service.failurePolicy = failurePolicy;
  // Only the exception is kept: refusing a VIP another host holds is the default.
  if (presence === 'allow') service.vipAlreadyPresent = 'allow';
  if (sorryServer) {
    if (realServers.some((r) => r.address === sorryServer.address && r.port === sorryServer.port))
      c.fail(
        [...path, 'sorryServer'],
        `${sorryServer.address}:${sorryServer.port} is also a real server; the sorry server serves only when they are all down`,
      );
    else service.sorryServer = sorryServer;
  }
  return service;
}

function checkAsn(c: Checker, value: unknown, path: PathPart[]): number | undefined {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < ASN_RANGE.min || value > ASN_RANGE.max || value === AS_TRANS) {
    c.fail(
      path,
      `${JSON.stringify(value)} is not an AS number a BGP speaker may use; use ${ASN_RANGE.min}-${ASN_RANGE.max} (not ${AS_TRANS}), e.g. 64512-65534 or 4200000000-4294967294 for a private one`,
    );
    return undefined;
  }
  return value;
}

/** `ha:` one balancer of several; `bgp:` announces the VIPs to routers (active/active, ECMP). */
const IFACE_NAME = /^[A-Za-z0-9_.-]{1,15}$/;

function checkInterfaceName(c: Checker, value: unknown, path: PathPart[]): string | undefined {
  return c.required(value, path, 'the name of an interface of this host', (x) => {
    if (typeof x === 'string' && IFACE_NAME.test(x)) return x;
    c.fail(path, `${JSON.stringify(x)} is not an interface name`);
    return undefined;
  });
}

function checkWhole(c: Checker, value: unknown, path: PathPart[], min: number, max: number, what: string): number | undefined {
  if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return value;
  c.fail(path, `${JSON.stringify(value)} is not ${what}; use a whole number, ${min}-${max}`);
  return undefined;
}

/** A list of distinct items, each checked by `item` (undefined: refused, already said). */
function checkList<T>(c: Checker, raw: unknown, path: PathPart[], item: (v: unknown, p: PathPart[]) => T | undefined): T[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) {
    c.fail(path, 'must be a list');
    return [];
  }
  const out: T[] = [];
  raw.forEach((v: unknown, i) => {
    const x = item(v, [...path, i]);
    if (x === undefined) return;
    const same = out.indexOf(x);
    if (same >= 0)
      c.fail(
        [...path, i],
        `${String(x)} is already ${
          formatPath([...path, same])
            .split('.')
            .pop() ?? ''
        }; list it once`,
      );
    else out.push(x);
  });
  return out;
}

function checkVrrp(c: Checker, v: unknown, vp: PathPart[]): VrrpSettings | undefined {
  if (!isRecord(v)) {
    c.fail(vp, 'must be a mapping with interface, virtualRouterId and priority');
    return undefined;
  }
  c.unknownKeys(v, VRRP_KEYS, vp);
  const iface = checkInterfaceName(c, v.interface, [...vp, 'interface']);
  const id = c.required(v.virtualRouterId, [...vp, 'virtualRouterId'], 'the VRRP group both balancers share, 1-255', (x) =>
    checkWhole(c, x, [...vp, 'virtualRouterId'], 1, 255, 'a VRRP virtual router id'),
  );
  // 255 is the address owner's priority in VRRP, which a floating address never has; 0 means "leaving".
  const priority = c.required(v.priority, [...vp, 'priority'], '1-254, the higher one is master when both start', (x) =>
    checkWhole(c, x, [...vp, 'priority'], 1, 254, 'a VRRP priority'),
  );
  const peers = checkList(c, v.peers, [...vp, 'peers'], (x, p) => c.hostAddress(x, p, 'balancer'));
  let advertIntervalMs: number = VRRP_DEFAULTS.advertIntervalMs;
  if (v.advertInterval !== undefined) {
    const ms = v.advertInterval;
    if (typeof ms === 'number' && Number.isInteger(ms) && ms % 10 === 0 && ms >= ADVERT_MS.min && ms <= ADVERT_MS.max)
      advertIntervalMs = ms;
    else
      c.fail(
        [...vp, 'advertInterval'],
        `${JSON.stringify(ms)} is not a VRRP advert interval; use milliseconds in steps of 10, ${ADVERT_MS.min}-${ADVERT_MS.max}`,
      );
  }
  const addresses = checkList(c, v.addresses, [...vp, 'addresses'], (x, p) => {
    const m = typeof x === 'string' ? /^([^/]+)(?:\/(\d{1,2}))?$/.exec(x) : null;
    const prefix = Number(m?.[2] ?? 32);
    if (!m || prefix < 1 || prefix > 32) {
      c.fail(p, `${JSON.stringify(x)} is not an IPv4 address with an optional prefix length (address/1-32)`);
      return undefined;
    }
    const address = c.hostAddress(m[1], p, 'floating');
    return address === undefined ? undefined : `${address}/${prefix}`;
  });
  if (iface === undefined || id === undefined || priority === undefined) return undefined;
  return { interface: iface, virtualRouterId: id, priority, peers, advertIntervalMs, addresses };
}

function checkSync(c: Checker, v: unknown, sp: PathPart[], backend: BackendChoice | undefined): SyncSettings | undefined {
  if (!isRecord(v)) {
    c.fail(sp, 'must be a mapping with engine, interface and peer (conntrackd) or syncId (ipvs)');
    return undefined;
  }
  c.unknownKeys(v, SYNC_KEYS, sp);
  const engine = c.required(v.engine, [...sp, 'engine'], SYNC_ENGINES.join(', '), (x) =>
    c.oneOf(x, SYNC_ENGINES, [...sp, 'engine'], 'sync engine'),
  );
  const iface = checkInterfaceName(c, v.interface, [...sp, 'interface']);
  if (engine === undefined) return undefined;
  for (const [other, keys] of Object.entries(SYNC_ENGINE_KEYS))
    if (other !== engine)
      for (const k of keys)
        if (v[k] !== undefined) c.fail([...sp, k], `does not apply to engine ${engine} (it is a ${other} setting); remove it`);
  if (engine === 'ipvs') {
    // The sync daemons copy IPVS connections; nftables NAT keeps its state in conntrack (engine conntrackd).
    if (backend !== undefined && backend !== 'auto' && backend !== 'ipvs')
      c.fail(
        [...sp, 'engine'],
        `ipvs syncs the IPVS backend's connections, and backend is ${backend}; use engine conntrackd, or backend ipvs`,
      );
    // The sync messages carry the id in one byte; a backup with id 0 would take every pair's messages.
    const syncId = c.required(v.syncId, [...sp, 'syncId'], 'the id both balancers of the pair share, 1-255', (x) =>
      checkWhole(c, x, [...sp, 'syncId'], 1, 255, 'an IPVS sync id'),
    );
    let group: string = IPVS_SYNC_DEFAULTS.group;
    if (v.group !== undefined) {
      const octets = typeof v.group === 'string' && /^\d{1,3}(\.\d{1,3}){3}$/.test(v.group) ? v.group.split('.').map(Number) : [];
      if (octets.length === 4 && octets.every((o) => o <= 255) && octets[0] >= 224 && octets[0] <= 239) group = octets.join('.');
      else c.fail([...sp, 'group'], `${JSON.stringify(v.group)} is not an IPv4 multicast group; use one of 224.0.0.0-239.255.255.255`);
    }
    const port = v.port === undefined ? IPVS_SYNC_DEFAULTS.port : checkWhole(c, v.port, [...sp, 'port'], 1, 65535, 'a UDP port');
    if (iface === undefined || syncId === undefined || port === undefined) return undefined;
    return { engine, interface: iface, syncId, group, port };
  }
  const peer = c.required(v.peer, [...sp, 'peer'], "the other balancer's unicast address on that interface", (x) =>
    c.hostAddress(x, [...sp, 'peer'], 'balancer'),
  );
  if (iface === undefined || peer === undefined) return undefined;
  return { engine, interface: iface, peer };
}

function checkHa(c: Checker, raw: unknown, path: PathPart[], backend: BackendChoice | undefined): HaSettings | undefined {
  if (!isRecord(raw)) {
    c.fail(path, 'must be a mapping with a "bgp" or a "vrrp" section');
    return undefined;
  }
  c.unknownKeys(raw, HA_KEYS, path);
  const ha: HaSettings = {};
  if (raw.bgp !== undefined && raw.vrrp !== undefined)
    c.fail(path, 'has both bgp and vrrp; choose one: bgp for active/active behind routers, vrrp for an active/standby pair');
  if (raw.sync !== undefined && raw.vrrp === undefined)
    c.fail([...path, 'sync'], 'needs ha.vrrp: connection state is copied to the standby of an active/standby pair');
  if (raw.vrrp !== undefined) {
    const vrrp = checkVrrp(c, raw.vrrp, [...path, 'vrrp']);
    const sync = raw.sync === undefined ? undefined : checkSync(c, raw.sync, [...path, 'sync'], backend);
    if (vrrp) ha.vrrp = vrrp;
    if (sync) ha.sync = sync;
  }
  if (raw.bgp === undefined) return ha;
  const bp = [...path, 'bgp'];
  const b = raw.bgp;
  if (!isRecord(b)) {
    c.fail(bp, 'must be a mapping with asn and peers');
    return undefined;
  }
  c.unknownKeys(b, BGP_KEYS, bp);
  const asn = checkAsn(c, b.asn, [...bp, 'asn']);
  const peers: BgpPeer[] = [];
  if (!Array.isArray(b.peers) || b.peers.length === 0)
    c.fail([...bp, 'peers'], 'is required: a list of routers, each with address and asn');
  else
    b.peers.forEach((p: unknown, i) => {
      const pp = [...bp, 'peers', i];
      if (!isRecord(p)) {
        c.fail(pp, 'must be a mapping with address and asn');
        return;
      }
      c.unknownKeys(p, BGP_PEER_KEYS, pp);
      const address = c.hostAddress(p.address, [...pp, 'address'], 'peer');
      const peerAsn = checkAsn(c, p.asn, [...pp, 'asn']);
      if (address === undefined || peerAsn === undefined) return;
      const same = peers.findIndex((x) => x.address === address);
      if (same >= 0) {
        c.fail([...pp, 'address'], `${address} is already peers[${same}]; each router is one peer`);
        return;
      }
      peers.push({ address, asn: peerAsn });
    });
  const routerId = b.routerId === undefined ? undefined : c.hostAddress(b.routerId, [...bp, 'routerId'], 'routerId');
  let bfd: boolean = BGP_DEFAULTS.bfd;
  if (b.bfd !== undefined) {
    if (typeof b.bfd === 'boolean') bfd = b.bfd;
    else c.fail([...bp, 'bfd'], `${JSON.stringify(b.bfd)} is not true or false`);
  }
  let holdTime: number = BGP_DEFAULTS.holdTime;
  if (b.holdTime !== undefined) {
    if (typeof b.holdTime === 'number' && Number.isInteger(b.holdTime) && b.holdTime >= 3 && b.holdTime <= 65535) holdTime = b.holdTime;
    else c.fail([...bp, 'holdTime'], `${JSON.stringify(b.holdTime)} is not a BGP hold time; use whole seconds, 3-65535`);
  }
  const balancers: string[] = [];
  if (b.balancers !== undefined) {
    if (!Array.isArray(b.balancers)) c.fail([...bp, 'balancers'], "must be a list of the other balancers' addresses");
    else
      b.balancers.forEach((x: unknown, i) => {
        const address = c.hostAddress(x, [...bp, 'balancers', i], 'balancer');
        if (address === undefined) return;
        if (peers.some((p) => p.address === address) || balancers.includes(address))
          c.fail([...bp, 'balancers', i], `${address} is listed twice; a router is a peer, another balancer is listed once here`);
        else balancers.push(address);
      });
  }
  if (asn === undefined || peers.length === 0) return undefined;
  const bgp: BgpSettings = { asn, peers, bfd, holdTime, ...(routerId ? { routerId } : {}), ...(balancers.length ? { balancers } : {}) };
  ha.bgp = bgp;
  return ha;
}

/** Validate an already-parsed document (JSON or YAML data). */
export function validateConfig(
  data: unknown,
  locate: (path: PathPart[]) => { line: number; column: number } | undefined = () => undefined,
): ParseResult {
  const c = new Checker(locate);
  if (!isRecord(data)) {
    c.fail([], 'the config must be a mapping with a "services" list');
    return { ok: false, issues: c.issues };
  }
  c.unknownKeys(data, TOP_KEYS, []);
  const backend = data.backend === undefined ? 'auto' : c.oneOf<BackendChoice>(data.backend, BACKENDS, ['backend'], 'backend');
  const ha = data.ha === undefined ? undefined : checkHa(c, data.ha, ['ha'], backend);
  // Under BGP every balancer holds every VIP by design: routers reach it by the announced routes, not by ARP.
  const vipPresence =
    data.vipAlreadyPresent === undefined
      ? ha?.bgp
        ? 'allow'
        : 'refuse'
      : (c.oneOf<VipPresence>(data.vipAlreadyPresent, VIP_PRESENCE, ['vipAlreadyPresent'], 'vipAlreadyPresent setting') ?? 'refuse');
  const vipAs = data.vipAs === undefined ? 'address' : c.oneOf<VipForm>(data.vipAs, VIP_FORMS, ['vipAs'], 'vipAs form');
  const conntrack = checkConntrack(c, data.conntrack);
  const services: Service[] = [];
  if (!Array.isArray(data.services)) {
    c.fail(['services'], 'is required: a list of services');
  } else {
    const keys = new Map<string, number>();
    const ports = new Map<string, number>();
    const names = new Map<string, number>();
    data.services.forEach((raw, i) => {
      const s = checkService(c, raw, ['services', i], vipPresence);
      if (!s) return;
      const key = serviceKey(s);
      const first = keys.get(key);
      if (first !== undefined)
        c.fail(['services', i], `serves ${key} like services[${first}]; one VIP, port and protocol can have only one service`);
      else keys.set(key, i);
      const port = transportKey(s);
      const samePort = ports.get(port);
      if (first === undefined && samePort !== undefined)
        c.fail(['services', i], `takes ${port} like services[${samePort}]; an L4 and an L7 service cannot share one VIP and port`);
      else ports.set(port, i);
      const sameName = names.get(s.name);
      if (sameName !== undefined && first === undefined)
        c.fail(['services', i, 'name'], `"${s.name}" is already the name of services[${sameName}]`);
      else names.set(s.name, i);
      services.push(s);
    });
  }
  if (ha?.vrrp) {
    const floating = new Set(ha.vrrp.addresses.map((a) => a.split('/')[0]));
    services.forEach((s, i) => {
      // HAProxy binds to its VIPs, which only the master holds: it would not start on the standby.
      if (isL7(s.protocol))
        c.fail(
          ['services', i, 'protocol'],
          `${s.protocol} services cannot run under ha.vrrp yet: HAProxy binds to the VIP, which only the master holds`,
        );
      if (floating.has(s.vip))
        c.fail(['ha', 'vrrp', 'addresses'], `${s.vip} is the VIP of services[${i}]; VIPs float with VRRP without being listed`);
    });
  }
  if (c.issues.length > 0 || backend === undefined) return { ok: false, issues: c.issues };
  return {
    ok: true,
    config: {
      backend,
      services,
      ...(ha?.bgp || ha?.vrrp ? { ha } : {}),
      ...(conntrack && Object.keys(conntrack).length > 0 ? { conntrack } : {}),
      ...(vipAs === 'route' ? { vipAs } : {}),
    },
  };
}

/** Keys written in JSON text (a string followed by a colon), counted with indexOf jumps from quote to quote. */
function jsonKeysWritten(text: string): number {
  let n = 0;
  for (let open = text.indexOf('"'); open >= 0;) {
    let close = text.indexOf('"', open + 1);
    // A quote after an odd number of backslashes is part of the string.
    for (;;) {
      if (close < 0) return n;
      let slashes = 0;
      while (text.charCodeAt(close - 1 - slashes) === 92) slashes++;
      if (slashes % 2 === 0) break;
      close = text.indexOf('"', close + 1);
    }
    let next = close + 1;
    for (let c = text.charCodeAt(next); c === 32 || c === 10 || c === 13 || c === 9; c = text.charCodeAt(++next));
    if (text.charCodeAt(next) === 58) n++;
    open = text.indexOf('"', next);
  }
  return n;
}

function keysHeld(v: unknown): number {
  let n = 0;
  if (Array.isArray(v)) for (const x of v) n += keysHeld(x);
  else if (v !== null && typeof v === 'object') for (const x of Object.values(v)) n += 1 + keysHeld(x);
  return n;
}

/**
 * Valid JSON with no repeated key, validated without the YAML parser: a
 * config of 10,000 services is 3.5 MB, which takes yaml seconds to compose.
 * Anything else (YAML, a syntax error, a repeated key, an invalid config)
 * is undefined and goes the YAML way, whose issues carry lines.
 */
function parseJsonFast(text: string): ParseResult | undefined {
  if (!text.trimStart().startsWith('{')) return undefined;
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return undefined;
  }
  // JSON.parse keeps the last of repeated keys where YAML refuses them: a repeat shows as fewer keys held than written.
  if (keysHeld(data) !== jsonKeysWritten(text)) return undefined;
  const result = validateConfig(data);
  return result.ok ? result : undefined;
}

/** Parse YAML or JSON text (JSON is YAML) and validate it. */
export function parseConfig(text: string): ParseResult {
  const fast = parseJsonFast(text);
  if (fast) return fast;
  // Loaded on first use: a JSON config, and a plan the memo answers from the file's bytes, never need yaml (80 ms to load).
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- see above
  const { parseYamlConfig } = require('./parse-yaml') as typeof import('./parse-yaml');
  return parseYamlConfig(text);
}

export function formatIssue(file: string, issue: ConfigIssue): string {
  const where = issue.line !== undefined ? `${file}:${issue.line}:${issue.column ?? 1}` : file;
  return `${where}: ${issue.path ? `${issue.path}: ` : ''}${issue.message}`;
}
