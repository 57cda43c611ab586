// Run by test/uml/ipvs-sync.test.ts inside one balancer's namespace (the
// IPVS sync daemons belong to the namespace of the socket that starts them):
//   start|stop INTERFACE SYNC_ID  - src/ha/ipvs-sync.ts as `slbctl run` uses it
//   list                          - GET_DAEMON, as JSON
// The daemons are kernel threads: they run on after this process exits.
import { IpvsSyncDaemons } from '../../src/ha/ipvs-sync';
import { IpvsClient } from '../../src/kernel/ipvs/client';

async function main(): Promise<void> {
  const [command, iface = '', syncId = '0'] = process.argv.slice(2);
  if (command === 'list') {
    const client = await IpvsClient.open();
    process.stdout.write(`${JSON.stringify(await client.daemons())}\n`);
    client.close();
    return;
  }
  const sync = { engine: 'ipvs' as const, interface: iface, syncId: Number(syncId), group: '224.0.0.81', port: 8848 };
  const daemons = await IpvsSyncDaemons.start(sync, (_level, message) => process.stderr.write(`${message}\n`));
  if (command === 'stop') await daemons.stop();
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exit(2);
  },
);
