// `lab mode`: the real servers' side of a mode, then the balancer's config
// applied by slbctl itself inside the LB namespace (the same path an
// operator uses on a real balancer).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Mode } from '../model/types';
import { run } from '../util/exec';
import { CertificateFiles, selfSignedCertificate } from '../util/certificate';
import { configureRealServers, labExists, labStateDir, nsName, writeLabState } from './netns';
import { DEFAULT_LAB_OPTIONS, LabModeOptions, labServiceConfig } from './lb-config';
import { LabError } from './errors';
import { REFERENCE_TOPOLOGY } from './topology';
import { CLI_ENTRY } from '../util/self';

export async function requireLabUp(lab: string): Promise<void> {
  const { missing } = await labExists(lab);
  if (missing.length > 0)
    throw new LabError(
      `lab "${lab}" is not up (missing ${missing.map((h) => nsName(lab, h)).join(', ')}); run \`slbctl lab up --name ${lab}\``,
    );
}

/** https: a self-signed certificate for the VIP, made once per lab. */
async function labCertificate(lab: string, out: (line: string) => void): Promise<CertificateFiles> {
  const dir = labStateDir(lab);
  const existing = { certificate: path.join(dir, 'lb.crt'), key: path.join(dir, 'lb.key') };
  if (fs.existsSync(existing.certificate) && fs.existsSync(existing.key)) return existing;
  const made = await selfSignedCertificate(dir, 'lb', REFERENCE_TOPOLOGY.vip);
  out(`  lb: a self-signed certificate for ${REFERENCE_TOPOLOGY.vip} (${made.certificate})`);
  return made;
}

export async function applyLabMode(
  lab: string,
  mode: Mode,
  out: (line: string) => void,
  options: LabModeOptions = DEFAULT_LAB_OPTIONS,
): Promise<void> {
  await requireLabUp(lab);
  const { encapsulation } = options;
  for (const step of await configureRealServers(lab, mode, REFERENCE_TOPOLOGY, encapsulation)) out(`  rs: ${step}`);
  const file = path.join(labStateDir(lab), `lb-${mode}.yaml`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tls = options.protocol === 'https' ? await labCertificate(lab, out) : undefined;
  fs.writeFileSync(file, labServiceConfig(mode, REFERENCE_TOPOLOGY, { ...options, ...(tls ? { tls } : {}) }));
  out(`  lb: slbctl apply -f ${file} (inside ${nsName(lab, 'lb')})`);
  const r = await run([process.execPath, CLI_ENTRY, 'apply', '-f', file], { netns: nsName(lab, 'lb') });
  for (const line of `${r.stdout}${r.stderr}`.trimEnd().split('\n')) if (line) out(`    ${line}`);
  if (r.code !== 0) throw new LabError(`lab mode ${mode}: slbctl apply on the balancer failed (exit ${r.code})`);
  await writeLabState(lab, { mode, encapsulation, protocol: options.protocol, cache: options.cache });
}
