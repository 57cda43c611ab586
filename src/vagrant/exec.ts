// `lab exec HOST -- CMD` on the VMs: the router is the client VM's root
// namespace, the client its namespace "client"; lb2 exists with --balancers 2.
import { LabHostName } from '../lab/topology';
import { RunResult } from '../util/exec';
import { LabError } from '../lab/errors';
import { CLIENT_NETNS } from './plan';
import { VagrantLabRecord } from './lab';
import { vmRun } from './ssh';

export function vagrantExec(record: VagrantLabRecord, host: LabHostName, argv: string[]): Promise<RunResult> {
  if (host === 'lb2' && record.balancers !== 2)
    throw new LabError(`lab "${record.lab}" has one balancer VM (lb); make one with lb2 by \`slbctl lab up --provider vagrant --balancers 2\``);
  if (host === 'client') return vmRun(record, 'client', ['ip', 'netns', 'exec', CLIENT_NETNS, ...argv]);
  return vmRun(record, host === 'router' ? 'client' : host, argv);
}
