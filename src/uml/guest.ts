// Runs inside the user-mode-linux guest (started by scripts/uml-init.sh):
// loads the kernel modules the job asks for, then either runs the job's one
// command, or (agent) runs every command the host drops into <work>/jobs/
// until told to power off. Output and exit codes go back through files in
// the job folder, which is on the host's filesystem.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { AgentCommand, UmlJob } from './job';
import { SHOW_FILE, foldersToShow } from './visible';

function runOne(argv: string[], cwd: string, outFile: string, env: Record<string, string>, timeoutMs?: number): number {
  const out = fs.openSync(outFile, 'a');
  try {
    const [cmd, ...args] = argv;
    const r = spawnSync(cmd ?? 'true', args, {
      cwd,
      stdio: ['ignore', out, out],
      env: { ...process.env, ...env, SLBCTL_IN_UML: '1' },
      ...(timeoutMs ? { timeout: timeoutMs } : {}),
    });
    if (r.error) fs.writeSync(out, `uml guest: ${r.error.message}\n`);
    return r.status ?? (r.signal ? 128 : 1);
  } finally {
    fs.closeSync(out);
  }
}

/** Mount the host's folders this command needs where the guest's private /tmp, /run or /dev/shm hide them (uml-init.sh did the boot's). */
function showFolders(folders: readonly string[], shown: string[], outFile: string): void {
  for (const dir of foldersToShow(folders, shown).show) {
    fs.mkdirSync(dir, { recursive: true });
    const r = spawnSync('mount', ['-t', 'hostfs', '-o', dir, 'none', dir], { encoding: 'utf8' });
    if (r.status === 0) shown.push(dir);
    else fs.appendFileSync(outFile, `uml guest: cannot mount the host's ${dir}: ${(r.stderr || r.error?.message || '').trim()}\n`);
  }
}

function agent(work: string, job: UmlJob): void {
  const shown = fs.readFileSync(path.join(work, SHOW_FILE), 'utf8').split('\n').filter(Boolean);
  const jobs = path.join(work, 'jobs');
  fs.mkdirSync(jobs, { recursive: true });
  fs.writeFileSync(path.join(work, 'ready'), `${Date.now()}\n`);
  for (;;) {
    const pending = fs
      .readdirSync(jobs)
      .filter((f) => /^\d+\.json$/.test(f) && !fs.existsSync(path.join(jobs, f.replace('.json', '.code'))))
      .sort((a, b) => parseInt(a, 10) - parseInt(b, 10));
    for (const f of pending) {
      const base = path.join(jobs, f.replace('.json', ''));
      const cmd = JSON.parse(fs.readFileSync(path.join(jobs, f), 'utf8')) as AgentCommand;
      if (cmd.poweroff) {
        fs.writeFileSync(`${base}.code`, '0\n');
        return;
      }
      showFolders([cmd.cwd, ...(cmd.show ?? [])], shown, `${base}.out`);
      const code = runOne(cmd.argv, cmd.cwd, `${base}.out`, job.env);
      fs.writeFileSync(`${base}.code`, `${code}\n`);
    }
    spawnSync('sleep', ['0.1']);
  }
}

function main(): void {
  const work = process.argv[2] ?? '';
  const job = JSON.parse(fs.readFileSync(path.join(work, 'job.json'), 'utf8')) as UmlJob;
  const log = path.join(work, 'output.log');
  let code = 0;
  try {
    for (const m of job.modules) {
      const r = spawnSync('modprobe', ['-d', '/run/uml-modules', m], { stdio: 'ignore' });
      if (r.status !== 0) fs.appendFileSync(log, `uml guest: modprobe ${m} failed\n`);
    }
    if (job.agent) agent(work, job);
    else code = runOne(job.argv, job.cwd, log, job.env, job.timeoutMs);
  } catch (e) {
    fs.appendFileSync(log, `uml guest: ${(e as Error).message}\n`);
    code = 125;
  } finally {
    fs.writeFileSync(path.join(work, 'exit-code'), `${code}\n`);
    spawnSync('poweroff', ['-f'], { stdio: 'ignore' });
  }
}

main();
