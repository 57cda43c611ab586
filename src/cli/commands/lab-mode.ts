import * as path from 'node:path';
import * as fs from 'node:fs';
import type { CommandModule } from 'yargs';
import { MODES, Mode } from '../../model/types';
import { configureRealServers, labExists, nsName, writeLabState, labStateDir } from '../../lab/netns';
import { labServiceConfig, MODE_TITLES } from '../../lab/lb-config';
import { REFERENCE_TOPOLOGY } from '../../lab/topology';
import { run } from '../../util/exec';
import { EXIT, UsageError } from '../errors';
import { requireRoot, withLabName } from '../lab-options';

interface Args { name: string; mode: Mode }

/** The slbctl entry point, to run slbctl itself inside the balancer's namespace. */
export const CLI_ENTRY = path.join(__dirname, '..', 'main.js');

export async function applyLabMode(lab: string, mode: Mode, out: (line: string) => void): Promise<void> {
  const { missing } = await labExists(lab);
  if (missing.length > 0) throw new UsageError(`lab "${lab}" is not up (missing ${missing.map((h) => nsName(lab, h)).join(', ')}); run \`slbctl lab up --name ${lab}\``, EXIT.lab);
  for (const step of await configureRealServers(lab, mode)) out(`  rs: ${step}`);
  const file = path.join(labStateDir(lab), `lb-${mode}.yaml`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, labServiceConfig(mode, REFERENCE_TOPOLOGY));
  out(`  lb: slbctl apply -f ${file} (inside ${nsName(lab, 'lb')})`);
  const r = await run([process.execPath, CLI_ENTRY, 'apply', '-f', file], { netns: nsName(lab, 'lb') });
  for (const line of `${r.stdout}${r.stderr}`.trimEnd().split('\n')) if (line) out(`    ${line}`);
  if (r.code !== 0) throw new UsageError(`lab mode ${mode}: slbctl apply on the balancer failed (exit ${r.code})`, r.code);
  await writeLabState(lab, { mode });
}

export const labModeCommand: CommandModule<object, Args> = {
  command: 'mode <mode>',
  describe: 'Configure the real servers for a mode and apply the balancer\'s config with slbctl inside the LB namespace',
  builder: (y) => withLabName(y).positional('mode', { choices: MODES, demandOption: true, describe: 'forwarding mode' }),
  handler: async (args) => {
    requireRoot('lab mode');
    process.stdout.write(`lab "${args.name}": mode ${args.mode} (${MODE_TITLES[args.mode]})\n`);
    await applyLabMode(args.name, args.mode, (l) => process.stdout.write(`${l}\n`));
    process.stdout.write(`next: slbctl lab verify --name ${args.name}\n`);
  },
};
