import type { CommandModule } from 'yargs';
import { closeSession } from '../../engine/engine';
import { parseDuration } from '../../model/health';
import { serviceKey } from '../../model/types';
import { connectionsOf, findTarget, setRealServer } from '../../controller/drain';
import { readDrains, updateDrains } from '../../controller/records';
import { UsageError } from '../errors';
import { waitMs, withWaitOption } from '../writer';
import { Lock } from '../../records/lock';
import { Drain } from '../../controller/effective';

interface Args {
  service: string;
  rs: string;
  deadline: string;
  quiet: boolean;
  wait: string;
}

/** Change the drains record as the namespace's writer (the controller reads it while it plans). */
async function changeDrains(wait: number, fn: (d: Drain[]) => Drain[]): Promise<void> {
  const lock = await Lock.acquire('write', wait);
  try {
    updateDrains(fn);
  } finally {
    lock.release();
  }
}

export const drainCommand: CommandModule<object, Args> = {
  command: 'drain <service> <rs>',
  describe:
    'Give a real server weight 0, show its connections finishing, and remove it when they reach 0 or the deadline passes (kept by a running `slbctl run`; undo with undrain)',
  builder: (y) =>
    withWaitOption(y)
      .positional('service', { type: 'string', demandOption: true, describe: 'service name, proto/vip:port or vip:port' })
      .positional('rs', { type: 'string', demandOption: true, describe: 'real server address or address:port' })
      .option('deadline', {
        type: 'string',
        default: '30s',
        describe: 'remove the real server after this long even with connections left, e.g. 90s',
      })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'print only the outcome' })
      .check((a) => {
        if (parseDuration(a.deadline) === undefined)
          throw new Error(`--deadline ${JSON.stringify(a.deadline)} is not a duration (e.g. "30s", "500ms")`);
        return true;
      })
      .epilogue(
        'TCP: waits for active (established) connections; closed ones the kernel still remembers (inactive) do not hold it up. UDP: waits for every entry to expire. DSR on nftables is stateless, so the balancer sees no connections: it waits for the deadline.',
      ),
  handler: async (args) => {
    // Checked by the builder: a bad deadline or wait never reaches the kernel.
    const deadlineMs = parseDuration(args.deadline) ?? 30_000;
    const wait = waitMs(args.wait);
    const t = await findTarget(args.service, args.rs, wait);
    const say = (line: string) => process.stdout.write(`${line}\n`);
    try {
      const key = serviceKey(t.service);
      const since = Date.now();
      const deadline = since + deadlineMs;
      const already = readDrains().find((d) => d.service === key && d.realServer === t.rsKey);
      if (already?.state === 'removed' || !t.realServer) {
        say(`${t.rsKey} is already drained and out of ${t.service.name}; \`slbctl undrain ${args.service} ${args.rs}\` brings it back`);
        return;
      }
      const weight = already?.weight ?? t.realServer.weight;
      await changeDrains(wait, (ds) => [
        ...ds.filter((d) => !(d.service === key && d.realServer === t.rsKey)),
        { service: key, realServer: t.rsKey, weight, since, deadline, state: 'draining' },
      ]);
      await setRealServer(t, 0, () => undefined);
      say(
        `draining ${t.rsKey} from ${t.service.name} (${key}): weight ${weight} -> 0, no new connections; deadline ${deadlineMs / 1000} s`,
      );
      const interrupted = () => {
        process.stderr.write(
          `\nslbctl: drain interrupted; ${t.rsKey} stays at weight 0 (the drain is recorded); \`slbctl undrain ${args.service} ${args.rs}\` restores it\n`,
        );
        process.exit(130);
      };
      process.once('SIGINT', interrupted);
      let last = '';
      let reason = 'deadline passed';
      for (;;) {
        const p = await connectionsOf(t);
        const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
        const line = p.visible
          ? `  ${p.active} active, ${p.inactive} inactive connections; ${left} s to the deadline`
          : `  connections not visible to the balancer (stateless DSR); ${left} s to the deadline`;
        if (!args.quiet && line !== last) say(line);
        last = line;
        const done = p.visible && p.active === 0 && (t.service.protocol === 'tcp' || p.inactive === 0);
        if (done) {
          reason = 'no connections left';
          break;
        }
        if (Date.now() >= deadline) {
          if (p.visible) reason = `deadline passed with ${p.active} active connection${p.active === 1 ? '' : 's'} left`;
          break;
        }
        await new Promise((r) => setTimeout(r, 250));
      }
      process.removeListener('SIGINT', interrupted);
      await changeDrains(wait, (ds) =>
        ds.map((d) => (d.service === key && d.realServer === t.rsKey ? { ...d, state: 'removed' as const } : d)),
      );
      await setRealServer(t, undefined, () => undefined);
      say(
        `${t.rsKey} removed from ${t.service.name} after ${((Date.now() - since) / 1000).toFixed(1)} s: ${reason}; \`slbctl undrain ${args.service} ${args.rs}\` brings it back`,
      );
    } finally {
      closeSession(t.k);
    }
  },
};

export const undrainCommand: CommandModule<object, Omit<Args, 'deadline' | 'quiet'>> = {
  command: 'undrain <service> <rs>',
  describe: 'End a drain: the real server comes back with its weight (under `slbctl run`, as its health decides)',
  builder: (y) =>
    withWaitOption(y)
      .positional('service', { type: 'string', demandOption: true, describe: 'service name, proto/vip:port or vip:port' })
      .positional('rs', { type: 'string', demandOption: true, describe: 'real server address or address:port' }),
  handler: async (args) => {
    const wait = waitMs(args.wait);
    const t = await findTarget(args.service, args.rs, wait);
    try {
      const key = serviceKey(t.service);
      const drain = readDrains().find((d) => d.service === key && d.realServer === t.rsKey);
      if (!drain) throw new UsageError(`${t.rsKey} of ${t.service.name} is not drained`);
      await changeDrains(wait, (ds) => ds.filter((d) => !(d.service === key && d.realServer === t.rsKey)));
      let mac: string | undefined;
      if (t.k.impl.capabilities.dsrNeedsMacs && t.service.mode === 'dsr') {
        mac = (await t.k.rtnl.resolveNeighbour(t.rsKey.split(':')[0]))?.mac;
        if (!mac) throw new UsageError(`${t.rsKey} does not answer ARP; it cannot be put back into a DSR service`);
      }
      await setRealServer(t, drain.weight, () => undefined, mac);
      process.stdout.write(`${t.rsKey} is back in ${t.service.name} (${key}) with weight ${drain.weight}\n`);
    } finally {
      closeSession(t.k);
    }
  },
};
