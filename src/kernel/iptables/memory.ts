// The source-NAT chain in memory, for tests of IPVS plans and rollbacks: it
// records each rewrite and can fail on purpose, like memory.ts for IPVS.
import { KernelError } from '../../util/errors';
import { NO_SNAT, SnatIo, SnatObserved, SnatRule } from './snat';

export class MemorySnat implements SnatIo {
  state: SnatObserved = { ...NO_SNAT, rules: [] };
  readonly calls: string[] = [];
  /** Fail this rewrite (1-based); 0: none. */
  failAt = 0;

  async read(): Promise<SnatObserved> {
    return { ...this.state, rules: this.state.rules.map((r) => ({ ...r })) };
  }

  async apply(_have: SnatObserved, rules: readonly SnatRule[]): Promise<void> {
    this.calls.push(`SNAT ${rules.map((r) => `${r.protocol}/${r.vip}:${r.port}->${r.snatAddress}`).join(', ') || '(none)'}`);
    if (this.failAt > 0 && this.calls.length === this.failAt)
      throw new KernelError('iptables: restore SLBCTL-SNAT: refused (failure injected by the test double)');
    this.state =
      rules.length === 0 ? { ...NO_SNAT, rules: [] } : { chain: true, jumps: 1, rules: rules.map((r) => ({ ...r })), foreign: 0 };
  }
}
