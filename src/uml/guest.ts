// Runs inside the user-mode-linux guest (started by scripts/uml-init.sh):
// loads the kernel modules the job asks for, runs the job's command with its
// output in the job folder, records the exit code and powers the guest off.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { UmlJob } from './job';

function main(): void {
  const work = process.argv[2] ?? '';
  const job = JSON.parse(fs.readFileSync(path.join(work, 'job.json'), 'utf8')) as UmlJob;
  const log = fs.openSync(path.join(work, 'output.log'), 'a');
  let code = 0;
  try {
    for (const m of job.modules) {
      const r = spawnSync('modprobe', ['-d', '/run/uml-modules', m], { stdio: ['ignore', log, log] });
      if (r.status !== 0) fs.writeSync(log, `uml guest: modprobe ${m} failed\n`);
    }
    const [cmd, ...args] = job.argv;
    const r = spawnSync(cmd ?? 'true', args, { cwd: job.cwd, stdio: ['ignore', log, log], env: { ...process.env, ...job.env, SLBCTL_IN_UML: '1' }, timeout: job.timeoutMs });
    code = r.status ?? (r.signal ? 128 : 1);
    if (r.error) fs.writeSync(log, `uml guest: ${r.error.message}\n`);
  } catch (e) {
    fs.writeSync(log, `uml guest: ${(e as Error).message}\n`);
    code = 125;
  } finally {
    fs.closeSync(log);
    fs.writeFileSync(path.join(work, 'exit-code'), `${code}\n`);
    spawnSync('poweroff', ['-f'], { stdio: 'ignore' });
  }
}

main();
