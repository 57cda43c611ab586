import type { CommandModule } from 'yargs';
import { withRtnl } from '../kernel-session';
import { observe, preflight } from '../../engine/engine';
import { serviceKey } from '../../model/types';
import { renderTable } from '../table';

interface Args { json: boolean }

export const statusCommand: CommandModule<object, Args> = {
  command: 'status',
  describe: 'Show what slbctl has programmed in the kernel (read back from the kernel, not from a file)',
  builder: (y) => y.option('json', { type: 'boolean', default: false, describe: 'print JSON' }),
  handler: async (args) => {
    preflight('nft');
    const observed = await withRtnl((rtnl) => observe(rtnl, ['net.ipv4.ip_forward']));
    const { kernel } = observed;
    if (args.json) {
      process.stdout.write(`${JSON.stringify({ backend: 'nft', tables: kernel.tables, services: kernel.services, ownedAddresses: kernel.ownedAddresses, sysctls: observed.sysctls }, null, 2)}\n`);
      return;
    }
    if (kernel.services.length === 0) {
      process.stdout.write(`backend: nft\nno services programmed${kernel.tables.length ? ` (tables present: ${kernel.tables.join(', ')})` : ''}\n`);
      return;
    }
    const rows: string[][] = [];
    for (const s of kernel.services) {
      const via = s.mode === 'fullnat' ? `snat ${s.snatAddress ?? '?'}` : s.mode === 'dsr' ? `fwd ${s.forwardDevice ?? '?'}` : 'dnat only';
      rows.push([serviceKey(s), s.name, s.mode, s.scheduler, `${s.device} ${via}`, '', '', String(s.counters?.packets ?? '-'), String(s.counters?.bytes ?? '-')]);
      for (const r of s.realServers) rows.push(['', '', '', '', '', `${r.address}:${r.port}${r.mac ? ` (${r.mac})` : ''}`, String(r.weight), '', '']);
    }
    process.stdout.write(`backend: nft\n${renderTable(['SERVICE', 'NAME', 'MODE', 'SCHED', 'VIP DEVICE / PATH', 'REAL SERVER', 'WEIGHT', 'PACKETS', 'BYTES'], rows)}\n`);
    const owned = kernel.ownedAddresses.map((a) => `${a.address} on ${a.device}`).join(', ');
    if (owned) process.stdout.write(`addresses added by slbctl: ${owned}\n`);
  },
};
