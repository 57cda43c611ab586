// The default lab: the reference topology in network namespaces of this kernel.
import { REFERENCE_TOPOLOGY, labHosts } from './topology';
import { labDown, labExec, labExists, labUp, nsName } from './netns';
import { applyLabMode } from './mode';
import { failBalancer, recoverBalancer } from './ha';
import { verifyLabMode } from '../verify/run';
import { Lab, LabProvider } from './provider';

function netnsLab(name: string): Lab {
  return {
    name,
    provider: 'netns',
    mode: (mode, options, say) => applyLabMode(name, mode, say, options),
    verify: (mode, requests, out, expect) => verifyLabMode(name, mode, requests, out, expect),
    exec: (host, argv) => labExec(name, host, argv),
    fail: (b, say) => failBalancer(name, b, say),
    recover: (b, say) => recoverBalancer(name, REFERENCE_TOPOLOGY, b, say),
    async down(say) {
      const { removed } = await labDown(name);
      say(removed.length ? `lab "${name}" removed: ${removed.join(', ')}` : `lab "${name}": nothing to remove`);
    },
  };
}

export const netnsProvider: LabProvider = {
  name: 'netns',
  describe: 'namespaces on this kernel',
  // Always "found": its commands say themselves when the namespaces are missing (and lab down cleans up a half-made lab).
  find: async (name) => netnsLab(name),
  async up(name, options, say) {
    const started = Date.now();
    const balancers = options.balancers ?? 1;
    await labUp(name, REFERENCE_TOPOLOGY, (line) => say(`  ${line}`), { balancers });
    const hosts = labHosts(balancers).map((h) => {
      const host = REFERENCE_TOPOLOGY.hosts.find((x) => x.name === h);
      return `  ${nsName(name, h).padEnd(16)} ${host?.interfaces.map((i) => `${i.name} ${i.cidr}`).join(', ') ?? ''}`;
    });
    return `lab "${name}" is up in ${((Date.now() - started) / 1000).toFixed(1)} s:\n${hosts.join('\n')}\nnext: slbctl lab mode ${balancers === 2 ? 'dsr --ha ecmp|fullnat --ha vrrp' : 'fullnat|transparent|dsr'} --name ${name}`;
  },
};

export { labExists };
