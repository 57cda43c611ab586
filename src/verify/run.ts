// `lab verify` in the netns lab: the capture driver of the one verify flow
// (flow.ts): a capture per host opened inside its namespace from this one
// process, real HTTP requests from the client with curl.
import { startCapture, writeHostCapture, CaptureSession } from '../capture/capture';
import { HostCapture } from '../capture/types';
import { Mode } from '../model/types';
import { LabTopology, REFERENCE_TOPOLOGY, hostOf } from '../lab/topology';
import { nsName, readLabState } from '../lab/netns';
import { requireLabUp } from '../lab/mode';
import { RequestOutcome } from './facts';
import { writingOutput } from './judge';
import { request } from './live';
import { CaptureDriver, VerifyExpectation, VerifyReport, verifyWith } from './flow';
import { verifyEcmp } from './failover';
import { verifyVrrp } from './vrrp';
import { MODES } from '../model/types';
import { LabError } from '../lab/errors';

export type { VerifyReport };
export { CAPTURED_HOSTS, captureFilter } from './flow';
export { curlArgv, curlOutcome, judgeLab, prepareOutputDirectory, writingOutput } from './judge';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The netns lab's captures: one process, each capture opened inside its host's namespace; curl in the client's. */
export function netnsCaptureDriver(lab: string, topology: LabTopology): CaptureDriver {
  const sessions: CaptureSession[] = [];
  let captures: HostCapture[] = [];
  return {
    async start(hosts, filter) {
      for (const host of hosts) {
        const device = hostOf(topology, host).interfaces[0]?.name ?? 'eth0';
        sessions.push(startCapture({ host, netns: nsName(lab, host), device, filter }));
      }
      await sleep(200); // the capture sockets are live before the first SYN
    },
    async requests(k, url) {
      const outcomes: RequestOutcome[] = [];
      for (let i = 0; i < k; i++) outcomes.push(await request(lab, url));
      return outcomes;
    },
    async stop() {
      await sleep(300); // let the last FIN/ACKs land in every capture
      captures = sessions.map((s) => s.stop());
    },
    async collect(outDir) {
      for (const c of captures) writingOutput(() => writeHostCapture(c, outDir));
      return captures;
    },
  };
}

/** verify the netns lab against its applied mode (or the one asked for). */
export async function verifyLabMode(
  lab: string,
  mode: Mode | undefined,
  requests: number,
  out: string | undefined,
  expect?: VerifyExpectation,
): Promise<VerifyReport> {
  await requireLabUp(lab);
  const applied = await readLabState(lab);
  if (applied?.ha === 'ecmp') {
    if (mode !== undefined && mode !== 'dsr')
      throw new LabError(`lab "${lab}" runs dsr on two balancers (--ha ecmp); --mode ${mode} cannot be judged there`);
    if ((applied.failed ?? []).length > 0)
      throw new LabError(
        `lab "${lab}": ${applied.failed?.join(', ')} failed; run \`slbctl lab recover ${applied.failed?.[0]} --name ${lab}\` first (verify fails one itself)`,
      );
    return verifyEcmp(lab, REFERENCE_TOPOLOGY, requests, out);
  }
  if (applied?.ha === 'vrrp') {
    const running = MODES.find((m) => m === applied.mode);
    if (!running)
      throw new LabError(`lab "${lab}" runs --ha vrrp with no mode recorded; run \`slbctl lab mode fullnat --ha vrrp --name ${lab}\``);
    if (mode !== undefined && mode !== running)
      throw new LabError(`lab "${lab}" runs ${running} on a VRRP pair (--ha vrrp); --mode ${mode} cannot be judged there`);
    if ((applied.failed ?? []).length > 0)
      throw new LabError(
        `lab "${lab}": ${applied.failed?.join(', ')} failed; run \`slbctl lab recover ${applied.failed?.[0]} --name ${lab}\` first (verify fails one itself)`,
      );
    const pair = { engine: applied.syncEngine === 'ipvs' ? ('ipvs' as const) : ('conntrackd' as const), sync: applied.sync !== false };
    return verifyVrrp(lab, REFERENCE_TOPOLOGY, running, pair, requests, out);
  }
  return verifyWith(netnsCaptureDriver(lab, REFERENCE_TOPOLOGY), {
    lab,
    mode,
    applied,
    requests,
    out,
    topology: REFERENCE_TOPOLOGY,
    ...(expect ? { expect } : {}),
  });
}
