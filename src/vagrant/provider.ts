// The lab on four VMs (Vagrant, libvirt/QEMU), IPVS in the balancer's own kernel.
import { Lab, LabProvider } from '../lab/provider';
import { defaultVagrantBox } from './box';
import { VagrantLabRecord, orphanedVagrantLab, startVagrantLab, stopVagrantLab, vagrantLab } from './lab';
import { applyVagrantMode } from './mode';
import { verifyVagrantLab } from './verify';
import { vagrantExec } from './exec';

function vagrantLabOf(record: VagrantLabRecord): Lab {
  return {
    name: record.lab,
    provider: 'vagrant',
    mode: (mode, options, say) => applyVagrantMode(record, mode, options, say),
    // The record as it is now: lab mode wrote the applied mode into it.
    verify: (mode, requests, out, expect) => verifyVagrantLab(vagrantLab(record.lab) ?? record, mode, requests, out, expect),
    exec: (host, argv) => vagrantExec(record, host, argv),
    async down(say) {
      await stopVagrantLab(record, (line) => say(`lab "${record.lab}": ${line}`));
    },
  };
}

export const vagrantProvider: LabProvider = {
  name: 'vagrant',
  describe: 'four VMs (vagrant up, libvirt), IPVS by default',
  async find(name, o = {}) {
    // A lab whose record was lost is still found by its libvirt objects when asked (lab down removes it).
    const record = vagrantLab(name) ?? (o.leftovers ? await orphanedVagrantLab(name) : undefined);
    return record ? vagrantLabOf(record) : undefined;
  },
  async up(name, options, say) {
    const started = Date.now();
    const record = await startVagrantLab(name, options.box ?? (await defaultVagrantBox()), (line) => say(`  ${line}`));
    return `lab "${name}" is up on Vagrant VMs in ${((Date.now() - started) / 1000).toFixed(0)} s (box ${record.box}; client VM = client + router)\nnext: slbctl lab mode fullnat|transparent|dsr --name ${name}`;
  },
};
