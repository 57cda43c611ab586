// A namespace of a test's own standing for a balancer: eth0 with the LB's
// lab address, its veth peer in the same namespace (where RS addresses can go).
import { run, runChecked } from '../../src/util/exec';
import { identityOf, removeRecordsOf } from '../../src/records/netns';

export async function createBalancerNetns(ns: string): Promise<void> {
  await runChecked('netns', ['ip', 'netns', 'add', ns]);
  await setUpBalancerNetns(ns);
}

/** The balancer's interfaces in a namespace that already exists (one a test created to get a given inode). */
export async function setUpBalancerNetns(ns: string): Promise<void> {
  // IPv6 link-local addresses change state (DAD) on their own; they are not slbctl's business.
  await runChecked('no ipv6', ['sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'], { netns: ns });
  await runChecked('veth', ['ip', '-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'peer0']);
  await runChecked('addr', ['ip', '-n', ns, 'addr', 'add', '172.16.75.83/24', 'dev', 'eth0']);
  for (const dev of ['eth0', 'peer0', 'lo']) await runChecked('up', ['ip', '-n', ns, 'link', 'set', dev, 'up']);
}

export async function deleteNetns(ns: string): Promise<void> {
  // slbctl's records of the namespace go with it, as lab down does for its namespaces.
  try {
    removeRecordsOf(identityOf(ns));
  } catch {
    // already gone
  }
  await run(['ip', 'netns', 'del', ns]);
}
