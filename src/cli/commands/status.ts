import type { CommandModule } from 'yargs';
import { Backend, closeSession, observe, sessionIfAvailable } from '../../engine/engine';
import { serviceKey } from '../../model/types';
import { KernelState } from '../../model/state';
import { renderTable } from '../table';

interface Args { json: boolean }

function render(backend: Backend, kernel: KernelState): string {
  const rows: string[][] = [];
  for (const s of kernel.services) {
    const via = s.mode === 'fullnat' ? `snat ${s.snatAddress ?? '?'}` : s.mode === 'dsr' ? (s.encapsulation === 'ipip' ? 'ipip tunnel' : `fwd ${s.forwardDevice ?? 'direct routing'}`) : 'dnat only';
    rows.push([serviceKey(s), s.name, s.mode, s.scheduler, `${s.device} ${via}`, '', '', '', String(s.counters?.packets ?? '-'), String(s.counters?.bytes ?? '-')]);
    for (const r of s.realServers) {
      const conns = r.connections ? `${r.connections.active}/${r.connections.inactive}` : '-';
      rows.push(['', '', '', '', '', `${r.address}:${r.port}${r.mac ? ` (${r.mac})` : ''}`, String(r.weight), conns, String(r.counters?.packets ?? ''), String(r.counters?.bytes ?? '')]);
    }
  }
  const owned = kernel.ownedAddresses.map((a) => `${a.address} on ${a.device}`).join(', ');
  return `backend: ${backend}\n${renderTable(['SERVICE', 'NAME', 'MODE', 'SCHED', 'VIP DEVICE / PATH', 'REAL SERVER', 'WEIGHT', 'CONNS ACT/INACT', 'PACKETS', 'BYTES'], rows)}\n${owned ? `addresses added by slbctl: ${owned}\n` : ''}`;
}

export const statusCommand: CommandModule<object, Args> = {
  command: 'status',
  describe: 'Show what slbctl has programmed in the kernel, per backend (read back from the kernel, with counters)',
  builder: (y) => y.option('json', { type: 'boolean', default: false, describe: 'print JSON' }),
  handler: async (args) => {
    const found: { backend: Backend; kernel: KernelState; sysctls: Record<string, string> }[] = [];
    for (const backend of ['nft', 'ipvs'] as const) {
      const k = await sessionIfAvailable(backend);
      if (!k) continue;
      try {
        const { kernel, sysctls } = await observe(k, ['net.ipv4.ip_forward']);
        if (kernel.services.length > 0 || kernel.tables.length > 0 || found.length === 0) found.push({ backend, kernel, sysctls });
      } finally {
        closeSession(k);
      }
    }
    const withServices = found.filter((f) => f.kernel.services.length > 0);
    if (args.json) {
      const bigints = (_k: string, v: unknown) => (typeof v === 'bigint' ? Number(v) : v);
      const pick = withServices[0] ?? found[0];
      process.stdout.write(`${JSON.stringify({
        backend: pick?.backend ?? 'none', services: withServices.flatMap((f) => f.kernel.services.map((s) => ({ backend: f.backend, ...s }))),
        ownedAddresses: found.flatMap((f) => f.kernel.ownedAddresses), tables: found.flatMap((f) => f.kernel.tables), sysctls: pick?.sysctls ?? {},
      }, bigints, 2)}\n`);
      return;
    }
    if (withServices.length === 0) {
      process.stdout.write(`backend: ${found.map((f) => f.backend).join(', ') || 'none'}\nno services programmed\n`);
      return;
    }
    process.stdout.write(withServices.map((f) => render(f.backend, f.kernel)).join('\n'));
  },
};
