// A small IPVS client over generic netlink (the `netlink` package's socket):
// resolve the IPVS family, then service and destination commands and dumps.
// Requests are sent without the package's error check so that the errno is
// kept and turned into an IpvsError naming the step and the object.
import { createGenericNetlink, GenericNetlinkSocket, NetlinkMessage, parseError, genl } from 'netlink';
import { KernelError } from '../../util/errors';
import { IpvsOperations } from './operations';
import { Cmd, IPVS_GENL_NAME, IPVS_GENL_VERSION } from './constants';
import { Attrs, COMMAND, INFO, decode, encode } from './codec';
import {
  IpvsDestination,
  IpvsService,
  destinationFromWire,
  destinationKeyToWire,
  destinationToWire,
  serviceFromWire,
  serviceKeyToWire,
  serviceToWire,
} from './types';
import { IpvsSyncDaemon, SyncDaemonState, daemonFromWire, daemonToWire, describeDaemon, stateToWire } from './daemon';

const NLMSG_ERROR = 2;
const NLM_F_DUMP = 0x300;
const NLM_F_REQUEST_ACK = 0x1 | 0x4;
/** Requests in flight at most in `batch`, and per sendmsg (see batch). */
export const BATCH_WINDOW = 256;
export const BATCH_CHUNK = 64;
/** Receive buffer asked for by `batch`: room for a window of acks (an ack costs about 1 KiB of buffer). */
const BATCH_RCVBUF = 4 * 1024 * 1024;
const ERRNO_TEXT: Record<number, string> = {
  1: 'operation not permitted (needs CAP_NET_ADMIN)',
  2: 'not found',
  3: 'no such service',
  17: 'already exists',
  22: 'invalid argument',
  95: 'not supported',
  19: 'no such device',
};

/** What an errno means for one command (the kernel reuses ENOENT for several things). */
const COMMAND_ERRNO_TEXT: Record<number, Record<number, string>> = {
  [Cmd.NEW_SERVICE]: { 2: 'scheduler or persistence engine not available (is the ip_vs_<scheduler> module there?)' },
  [Cmd.SET_SERVICE]: { 2: 'scheduler or persistence engine not available (is the ip_vs_<scheduler> module there?)' },
  [Cmd.DEL_DEST]: { 2: 'no such destination' },
  [Cmd.SET_DEST]: { 2: 'no such destination' },
  [Cmd.NEW_DAEMON]: { 17: 'a sync daemon of that state already runs in this namespace', 19: 'no such interface' },
  [Cmd.DEL_DAEMON]: { 3: 'no such sync daemon runs' },
};

/** IPVS refused a request (exit 4); errno and the step are kept. */
export class IpvsError extends KernelError {
  constructor(
    readonly step: string,
    readonly errno: number,
    detail?: string,
  ) {
    super(`ipvs: ${step}: ${detail ?? ERRNO_TEXT[errno] ?? `errno ${errno}`}`);
  }
}

export const describeService = (s: Pick<IpvsService, 'protocol' | 'address' | 'port'>) => `service ${s.protocol} ${s.address}:${s.port}`;
export const describeDest = (d: Pick<IpvsDestination, 'address' | 'port'>) => `destination ${d.address}:${d.port}`;

/** One change request for `batch`, as the kernel takes it. */
export type IpvsCall =
  | { call: 'addService' | 'updateService'; service: IpvsService }
  | { call: 'deleteService'; service: Pick<IpvsService, 'protocol' | 'address' | 'port'> }
  | { call: 'addDestination' | 'updateDestination'; service: Pick<IpvsService, 'protocol' | 'address' | 'port'>; dest: IpvsDestination }
  | {
      call: 'deleteDestination';
      service: Pick<IpvsService, 'protocol' | 'address' | 'port'>;
      dest: Pick<IpvsDestination, 'address' | 'port'>;
    };

/** The step text, command and attributes of one call (the same as the one-at-a-time methods send). */
function wire(c: IpvsCall): { step: string; cmd: number; attrs: Attrs } {
  const s = describeService(c.service);
  switch (c.call) {
    case 'addService':
      return { step: `add ${s}`, cmd: Cmd.NEW_SERVICE, attrs: { service: serviceToWire(c.service) } };
    case 'updateService':
      return { step: `update ${s}`, cmd: Cmd.SET_SERVICE, attrs: { service: serviceToWire(c.service) } };
    case 'deleteService':
      return { step: `delete ${s}`, cmd: Cmd.DEL_SERVICE, attrs: { service: serviceKeyToWire(c.service) } };
    case 'addDestination':
      return {
        step: `add ${describeDest(c.dest)} to ${s}`,
        cmd: Cmd.NEW_DEST,
        attrs: { service: serviceKeyToWire(c.service), dest: destinationToWire(c.dest) },
      };
    case 'updateDestination':
      return {
        step: `update ${describeDest(c.dest)} of ${s}`,
        cmd: Cmd.SET_DEST,
        attrs: { service: serviceKeyToWire(c.service), dest: destinationToWire(c.dest) },
      };
    case 'deleteDestination':
      return {
        step: `delete ${describeDest(c.dest)} from ${s}`,
        cmd: Cmd.DEL_DEST,
        attrs: { service: serviceKeyToWire(c.service), dest: destinationKeyToWire(c.dest) },
      };
  }
}

export class IpvsClient implements IpvsOperations {
  /** netlink messages sent since the client opened (the benchmark counts them). */
  messagesSent = 0;

  private constructor(
    private readonly socket: GenericNetlinkSocket,
    private readonly family: number,
  ) {}

  /** Resolve the IPVS family; fails with a clear error when the kernel has no IPVS. */
  static async open(): Promise<IpvsClient> {
    const socket = createGenericNetlink();
    try {
      const [reply] = await socket.ctrlRequest(genl.Commands.GET_FAMILY, { familyName: IPVS_GENL_NAME }, { flags: 0 });
      if (!reply?.familyId) throw new Error('no family id');
      return new IpvsClient(socket, reply.familyId);
    } catch (e) {
      socket.socket.close();
      throw new IpvsError(
        'open',
        2,
        `the kernel has no IPVS (generic netlink family "IPVS" not found: load the ip_vs module, e.g. \`modprobe ip_vs\`) (${(e as Error).message})`,
      );
    }
  }

  close(): void {
    this.socket.socket.close();
  }

  /**
   * Run requests with up to `depth` in flight on the one socket (netlink
   * matches replies by sequence number), instead of one round trip each.
   * The kernel handles a socket's messages in order, so a later request may
   * depend on an earlier one. Stops at the first failure and rethrows it.
   */
  static async pipeline(tasks: (() => Promise<void>)[], depth = 128): Promise<void> {
    let next = 0;
    let failure: unknown;
    const worker = async () => {
      while (failure === undefined && next < tasks.length) {
        const task = tasks[next++];
        try {
          await task();
        } catch (e) {
          failure ??= e;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(depth, tasks.length) }, worker));
    if (failure !== undefined) throw failure instanceof Error ? failure : new Error(`pipeline: ${JSON.stringify(failure)}`);
  }

  /** sendmsg calls made by `batch` (the benchmark counts them). */
  sendCalls = 0;

  /**
   * Send change requests several to a sendmsg (BATCH_CHUNK netlink messages
   * in one buffer) with at most BATCH_WINDOW unacknowledged, and return each
   * one's outcome in order: undefined, or the IpvsError naming that request.
   * The kernel runs a socket's messages in order and one failure does not stop
   * the ones after it, so after a failure the requests already sent (at most a
   * window) still run; nothing more is sent (unless `stopOnFailure` is false:
   * a rollback tries every undo) and the caller learns the outcome of every
   * request (ones not sent: "not sent"). The receive buffer is raised
   * so that a window of acks fits: an ack that does not fit is dropped by the
   * kernel (ENOBUFS), which would leave a request's outcome unknown, so that
   * is an error for the whole batch.
   */
  async batch(
    calls: readonly IpvsCall[],
    options: { window?: number; chunk?: number; stopOnFailure?: boolean } = {},
  ): Promise<(IpvsError | undefined)[]> {
    const { window = BATCH_WINDOW, chunk = BATCH_CHUNK, stopOnFailure = true } = options;
    const nl = this.socket.socket;
    if (nl.getRecvBufferSize() < BATCH_RCVBUF) nl.setRecvBufferSize(BATCH_RCVBUF);
    const results: (IpvsError | undefined)[] = new Array<IpvsError | undefined>(calls.length);
    const port = nl.address().port;
    const bySeq = new Map<number, number>(); // seq -> index of the call
    let next = 0;
    let acked = 0;
    let failed = false;
    return (await new Promise((resolve, reject) => {
      const finish = (e?: Error) => {
        nl.off('message', onMessage);
        nl.off('error', onError);
        if (e) reject(e);
        else {
          for (let i = next; i < calls.length; i++)
            results[i] = new IpvsError(wire(calls[i]).step, 0, 'not sent: an earlier request failed');
          resolve(results);
        }
      };
      const sendMore = () => {
        while (!failed && next < calls.length && next - acked + Math.min(chunk, calls.length - next) <= window) {
          const parts: Buffer[] = [];
          const end = Math.min(next + chunk, calls.length);
          for (; next < end; next++) {
            const { cmd, attrs } = wire(calls[next]);
            const body = Buffer.concat([Buffer.from([cmd, IPVS_GENL_VERSION, 0, 0]), encode(COMMAND, attrs)]);
            const seq = nl.generateSeq();
            bySeq.set(seq, next);
            const head = Buffer.alloc(16);
            const len = 16 + body.length;
            head.writeUInt32LE(len, 0);
            head.writeUInt16LE(this.family, 4);
            head.writeUInt16LE(NLM_F_REQUEST_ACK, 6);
            head.writeUInt32LE(seq, 8);
            head.writeUInt32LE(port, 12);
            parts.push(head, body, Buffer.alloc((4 - (len % 4)) % 4));
            this.messagesSent++;
          }
          this.sendCalls++;
          nl.socket.send(Buffer.concat(parts), {}, (e) => {
            if (e) finish(new IpvsError('send a batch of requests', 0, `sendmsg failed: ${e.message}`));
          });
        }
        if (acked === next && (failed || next === calls.length)) finish();
      };
      const onMessage = (msgs: NetlinkMessage[]) => {
        for (const m of msgs) {
          const i = bySeq.get(m.seq);
          if (i === undefined || m.type !== NLMSG_ERROR) continue;
          bySeq.delete(m.seq);
          const { errno } = parseError(m.data, m.flags);
          if (errno !== 0) {
            const { step, cmd } = wire(calls[i]);
            results[i] = new IpvsError(step, -errno, COMMAND_ERRNO_TEXT[cmd]?.[-errno]);
            failed = stopOnFailure;
          }
          acked++;
        }
        sendMore();
      };
      const onError = (e: Error) => finish(new IpvsError('batch', 105, `netlink receive failed, some outcomes are unknown (${e.message})`));
      nl.on('message', onMessage);
      nl.on('error', onError);
      nl.ref(true);
      sendMore();
    }).finally(() => nl.ref(false))) as (IpvsError | undefined)[];
  }

  private async request(step: string, cmd: number, attrs: Attrs, dump = false): Promise<Buffer[]> {
    const header = Buffer.from([cmd, IPVS_GENL_VERSION, 0, 0]);
    this.messagesSent++;
    const [messages] = await this.socket.socket.request(this.family, [header, encode(COMMAND, attrs)], {
      checkError: false,
      ...(dump ? { flags: NLM_F_DUMP } : {}),
    });
    const payloads: Buffer[] = [];
    for (const m of messages) {
      if (m.type === NLMSG_ERROR) {
        const { errno } = parseError(m.data, m.flags);
        if (errno !== 0) throw new IpvsError(step, -errno, COMMAND_ERRNO_TEXT[cmd]?.[-errno]);
        continue;
      }
      payloads.push(m.data.subarray(4)); // skip the genl header
    }
    return payloads;
  }

  async info(): Promise<{ version: string; connTableSize: number }> {
    const [payload] = await this.request('get info', Cmd.GET_INFO, {});
    const a = decode(INFO, payload ?? Buffer.alloc(0));
    const v = Number(a.version ?? 0);
    return { version: `${(v >> 16) & 0xff}.${(v >> 8) & 0xff}.${v & 0xff}`, connTableSize: Number(a.connTabSize ?? 0) };
  }

  async services(): Promise<IpvsService[]> {
    const payloads = await this.request('list services', Cmd.GET_SERVICE, {}, true);
    return payloads.flatMap((p) => {
      const s = serviceFromWire((decode(COMMAND, p).service as Attrs | undefined) ?? {});
      return s ? [s] : [];
    });
  }

  async destinations(s: Pick<IpvsService, 'protocol' | 'address' | 'port'>): Promise<IpvsDestination[]> {
    const payloads = await this.request(`list destinations of ${describeService(s)}`, Cmd.GET_DEST, { service: serviceKeyToWire(s) }, true);
    return payloads.map((p) => destinationFromWire((decode(COMMAND, p).dest as Attrs | undefined) ?? {}));
  }

  async addService(s: IpvsService): Promise<void> {
    await this.request(`add ${describeService(s)}`, Cmd.NEW_SERVICE, { service: serviceToWire(s) });
  }

  async updateService(s: IpvsService): Promise<void> {
    await this.request(`update ${describeService(s)}`, Cmd.SET_SERVICE, { service: serviceToWire(s) });
  }

  async deleteService(s: Pick<IpvsService, 'protocol' | 'address' | 'port'>): Promise<void> {
    await this.request(`delete ${describeService(s)}`, Cmd.DEL_SERVICE, { service: serviceKeyToWire(s) });
  }

  async addDestination(s: Pick<IpvsService, 'protocol' | 'address' | 'port'>, d: IpvsDestination): Promise<void> {
    await this.request(`add ${describeDest(d)} to ${describeService(s)}`, Cmd.NEW_DEST, {
      service: serviceKeyToWire(s),
      dest: destinationToWire(d),
    });
  }

  async updateDestination(s: Pick<IpvsService, 'protocol' | 'address' | 'port'>, d: IpvsDestination): Promise<void> {
    await this.request(`update ${describeDest(d)} of ${describeService(s)}`, Cmd.SET_DEST, {
      service: serviceKeyToWire(s),
      dest: destinationToWire(d),
    });
  }

  async deleteDestination(
    s: Pick<IpvsService, 'protocol' | 'address' | 'port'>,
    d: Pick<IpvsDestination, 'address' | 'port'>,
  ): Promise<void> {
    await this.request(`delete ${describeDest(d)} from ${describeService(s)}`, Cmd.DEL_DEST, {
      service: serviceKeyToWire(s),
      dest: destinationKeyToWire(d),
    });
  }

  /** The sync daemons running in this namespace (GET_DAEMON is a dump: one message a daemon). */
  async daemons(): Promise<IpvsSyncDaemon[]> {
    const payloads = await this.request('list sync daemons', Cmd.GET_DAEMON, {}, true);
    return payloads.flatMap((p) => {
      const d = daemonFromWire((decode(COMMAND, p).daemon as Attrs | undefined) ?? {});
      return d ? [d] : [];
    });
  }

  async startDaemon(d: IpvsSyncDaemon): Promise<void> {
    await this.request(`start ${describeDaemon(d)}`, Cmd.NEW_DAEMON, { daemon: daemonToWire(d) });
  }

  /** The kernel stops a daemon by its state alone. */
  async stopDaemon(state: SyncDaemonState): Promise<void> {
    await this.request(`stop the ${state} sync daemon`, Cmd.DEL_DAEMON, { daemon: { state: stateToWire(state) } });
  }

  async timeouts(): Promise<{ tcp: number; tcpFin: number; udp: number }> {
    const [payload] = await this.request('get timeouts', Cmd.GET_CONFIG, {});
    const a = decode(COMMAND, payload ?? Buffer.alloc(0));
    return { tcp: Number(a.timeoutTcp ?? 0), tcpFin: Number(a.timeoutTcpFin ?? 0), udp: Number(a.timeoutUdp ?? 0) };
  }

  async setTimeouts(t: { tcp: number; tcpFin: number; udp: number }): Promise<void> {
    await this.request('set timeouts', Cmd.SET_CONFIG, { timeoutTcp: t.tcp, timeoutTcpFin: t.tcpFin, timeoutUdp: t.udp });
  }
}
