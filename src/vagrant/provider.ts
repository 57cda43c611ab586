// The lab on four VMs (Vagrant, libvirt/QEMU), IPVS in the balancer's own
// kernel; five with --balancers 2 (lb2 beside lb, BIRD on the router and
// both balancers for `lab mode dsr --ha ecmp`).
import { Lab, LabProvider } from '../lab/provider';
import { defaultVagrantBox } from './box';
import { VagrantLabRecord, orphanedVagrantLab, startVagrantLab, stopVagrantLab, vagrantLab } from './lab';
import { applyVagrantMode } from './mode';
import { verifyVagrantLab } from './verify';
import { verifyVagrantEcmp } from './ecmp';
import { failVmBalancer, recoverVmBalancer } from './ha';
import { vagrantExec } from './exec';
import { LabError } from '../lab/errors';

function vagrantLabOf(record: VagrantLabRecord): Lab {
  // The record as it is now: lab mode wrote the applied mode (and ha, failed) into it.
  const current = () => vagrantLab(record.lab) ?? record;
  const lab: Lab = {
    name: record.lab,
    provider: 'vagrant',
    mode: (mode, options, say) => applyVagrantMode(current(), mode, options, say),
    verify(mode, requests, out, expect) {
      const now = current();
      if (now.ha === 'ecmp') {
        if (mode !== undefined && mode !== 'dsr')
          throw new LabError(`lab "${now.lab}" runs dsr on two balancers (--ha ecmp); --mode ${mode} cannot be judged there`);
        return verifyVagrantEcmp(now, requests, out);
      }
      return verifyVagrantLab(now, mode, requests, out, expect);
    },
    exec: (host, argv) => vagrantExec(record, host, argv),
    async down(say) {
      await stopVagrantLab(record, (line) => say(`lab "${record.lab}": ${line}`));
    },
  };
  if (record.balancers !== 2) return lab;
  return {
    ...lab,
    async fail(b, say) {
      await failVmBalancer(current(), b, say);
    },
    recover: (b, say) => recoverVmBalancer(current(), b, say),
  };
}

export const vagrantProvider: LabProvider = {
  name: 'vagrant',
  describe: 'four VMs (vagrant up, libvirt), IPVS by default; five with --balancers 2',
  async find(name, o = {}) {
    // A lab whose record was lost is still found by its libvirt objects when asked (lab down removes it).
    const record = vagrantLab(name) ?? (o.leftovers ? await orphanedVagrantLab(name) : undefined);
    return record ? vagrantLabOf(record) : undefined;
  },
  async up(name, options, say) {
    const started = Date.now();
    const balancers = options.balancers ?? 1;
    const record = await startVagrantLab(name, options.box ?? (await defaultVagrantBox()), (line) => say(`  ${line}`), balancers);
    const next = balancers === 2 ? 'dsr --ha ecmp|fullnat|transparent|dsr' : 'fullnat|transparent|dsr';
    return `lab "${name}" is up on Vagrant VMs in ${((Date.now() - started) / 1000).toFixed(0)} s (box ${record.box}; client VM = client + router${balancers === 2 ? '; lb2 VM = the second balancer' : ''})\nnext: slbctl lab mode ${next} --name ${name}`;
  },
};
