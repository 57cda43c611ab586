// The lab on a user-mode-linux kernel that keeps running between commands:
// `lab up --provider uml` boots the guest with an agent, builds the netns lab
// inside it, and records the guest under /run/slbctl/uml/<lab>.json on the
// host. Every later lab command for that name is forwarded into the guest
// (the same slbctl, over the shared filesystem) and its output and exit code
// come back; pcap files written relative to the working directory land on
// the host directly, since the guest's root is the host's filesystem (and a
// working directory under its private /tmp is mounted back: visible.ts).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { CLI_ENTRY } from '../util/self';
import { LabError } from '../lab/errors';
import { checkLabName } from '../lab/names';
import { AgentCommand, UmlJob } from './job';
import { foldersToShow } from './visible';
import { IPVS_MODULES, UML_KERNEL, umlAvailable, umlKernelArgs, writeJob } from './run';

const RECORDS = '/run/slbctl/uml';

export interface UmlLabRecord {
  lab: string;
  pid: number;
  work: string;
  startedAt: string;
}

const recordFile = (lab: string) => path.join(RECORDS, `${lab}.json`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith(UML_KERNEL);
  } catch {
    return false;
  }
}

/** The running guest of this lab, or undefined (a record whose guest died is removed). */
export function umlLab(lab: string): UmlLabRecord | undefined {
  checkLabName(lab);
  let record: UmlLabRecord;
  try {
    record = JSON.parse(fs.readFileSync(recordFile(lab), 'utf8')) as UmlLabRecord;
  } catch {
    return undefined;
  }
  if (alive(record.pid)) return record;
  fs.rmSync(recordFile(lab), { force: true });
  fs.rmSync(record.work, { recursive: true, force: true });
  return undefined;
}

async function submit(record: UmlLabRecord, command: AgentCommand, timeoutMs: number): Promise<{ code: number; output: string }> {
  const jobs = path.join(record.work, 'jobs');
  const seq = Date.now() * 1000 + Math.floor(Math.random() * 1000);
  const base = path.join(jobs, String(seq));
  fs.writeFileSync(`${base}.tmp`, JSON.stringify(command));
  fs.renameSync(`${base}.tmp`, `${base}.json`);
  const deadline = Date.now() + timeoutMs;
  while (!fs.existsSync(`${base}.code`)) {
    if (!alive(record.pid))
      throw new LabError(`the user-mode-linux guest of lab "${record.lab}" stopped while running \`${command.argv.join(' ')}\``);
    if (Date.now() > deadline)
      throw new LabError(`lab "${record.lab}": \`${command.argv.join(' ')}\` did not finish in the guest within ${timeoutMs / 1000} s`);
    await sleep(100);
  }
  const output = fs.existsSync(`${base}.out`) ? fs.readFileSync(`${base}.out`, 'utf8') : '';
  return { code: Number(fs.readFileSync(`${base}.code`, 'utf8').trim()), output };
}

/**
 * Run `slbctl <args>` inside the lab's guest, in this working directory; the
 * guest is shown it, and the folders in `show`, when its own /tmp or /run
 * would hide them (output then lands on the host).
 */
export async function forwardToUml(
  record: UmlLabRecord,
  args: string[],
  timeoutMs = 10 * 60 * 1000,
  show: readonly string[] = [],
): Promise<{ code: number; output: string }> {
  const cwd = process.cwd();
  const notes = foldersToShow([cwd, ...show]).hidden.map(
    (h) => `note: ${h} is the guest's own: what the command writes there stays in the guest; use another folder\n`,
  );
  const r = await submit(record, { argv: [process.execPath, CLI_ENTRY, ...args], cwd, show: show.map((s) => path.resolve(s)) }, timeoutMs);
  return { code: r.code, output: notes.join('') + r.output };
}

export async function startUmlLab(lab: string, log: (line: string) => void): Promise<UmlLabRecord> {
  checkLabName(lab);
  const missing = umlAvailable();
  if (missing) throw new LabError(`provider uml: ${missing}`);
  if (umlLab(lab)) throw new LabError(`lab "${lab}" already runs on user-mode-linux; run \`slbctl lab down --name ${lab}\` first`);
  const work = fs.mkdtempSync(path.join('/var/tmp', `slbctl-uml-${lab}-`));
  const job: UmlJob = { argv: [], cwd: process.cwd(), modules: IPVS_MODULES, env: {}, timeoutMs: 0, agent: true };
  try {
    const { hidden } = writeJob(work, job);
    for (const h of hidden)
      log(
        `note: ${h} is the guest's own: files written there from inside the lab stay in the guest; run from another folder or pass --out`,
      );
  } catch (e) {
    fs.rmSync(work, { recursive: true, force: true });
    throw new LabError((e as Error).message);
  }
  const consoleLog = fs.openSync(path.join(work, 'console.log'), 'a');
  const child = spawn(UML_KERNEL, umlKernelArgs(work, 1024), {
    detached: true,
    stdio: ['ignore', consoleLog, consoleLog],
    env: { ...process.env, TMPDIR: os.tmpdir() },
  });
  child.unref();
  fs.closeSync(consoleLog);
  const record: UmlLabRecord = { lab, pid: child.pid ?? 0, work, startedAt: new Date().toISOString() };
  const started = Date.now();
  while (!fs.existsSync(path.join(work, 'ready'))) {
    if (!alive(record.pid) || Date.now() - started > 60_000) {
      try {
        process.kill(record.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      const tail = fs.readFileSync(path.join(work, 'console.log'), 'utf8').split('\n').slice(-10).join('\n');
      fs.rmSync(work, { recursive: true, force: true });
      throw new LabError(`the user-mode-linux kernel did not come up:\n${tail}`);
    }
    await sleep(100);
  }
  fs.mkdirSync(RECORDS, { recursive: true });
  fs.writeFileSync(recordFile(lab), `${JSON.stringify(record, null, 2)}\n`);
  log(`user-mode-linux kernel up in ${((Date.now() - started) / 1000).toFixed(1)} s (pid ${record.pid}, IPVS loaded)`);
  return record;
}

export async function stopUmlLab(record: UmlLabRecord): Promise<void> {
  try {
    await submit(record, { argv: [], cwd: '/', poweroff: true }, 10_000);
  } catch {
    // a guest that does not answer is killed below
  }
  for (let i = 0; i < 50 && alive(record.pid); i++) await sleep(100);
  if (alive(record.pid)) {
    try {
      process.kill(record.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  fs.rmSync(recordFile(record.lab), { force: true });
  fs.rmSync(record.work, { recursive: true, force: true });
}
