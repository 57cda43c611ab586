// Runs on a kernel with IPVS (started by test/integration/ipvs.test.ts): the
// README's exit codes on the IPVS backend. The kernel refusal is a real one:
// the scheduler's module is taken out, so IPVS answers "not available".
import { after, before } from 'node:test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CLI_ENTRY } from '../../src/util/self';
import { run, runChecked } from '../../src/util/exec';
import { ExitCodeEnv, exitCodeSuite } from '../helpers/exit-codes';

let dir = '';
const MODULES = ['-d', '/run/uml-modules'];

const service = (vip: string, port: number, mode: string, scheduler = 'rr') =>
  `  - { name: s${port}, vip: ${vip}, port: ${port}, mode: ${mode}, scheduler: ${scheduler}, realServers: [{ address: 10.0.5.2, port: ${port} }] }\n`;

const env = (): ExitCodeEnv => ({
  backend: 'ipvs',
  prefix: [],
  dir,
  slbctl: (args, o = {}) =>
    run([
      ...(o.path ? ['/usr/bin/env', `PATH=${o.path}`] : []),
      ...(o.nobody ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] : []),
      process.execPath,
      CLI_ENTRY,
      ...args,
    ]),
  snapshot: async () => {
    const ipvs = await run(['ipvsadm', '-Sn']);
    const nat = await run(['iptables-legacy', '-t', 'nat', '-S']);
    const addrs = await run(['ip', '-o', '-4', 'addr', 'show', 'dev', 'slbx0']);
    return `${ipvs.stdout}\n${nat.stdout}\n${addrs.stdout.replace(/valid_lft.*$/gm, '')}\n${fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8')}`;
  },
  goodConfig: `backend: ipvs\nservices:\n${service('10.0.5.1', 80, 'fullnat')}`,
  kernelRefusal: async () => {
    await runChecked('modprobe -r ip_vs_sed', ['modprobe', ...MODULES, '-r', 'ip_vs_sed']);
    return {
      // A new VIP first (added, then taken back), then the service IPVS cannot schedule.
      config: `backend: ipvs\nservices:\n${service('10.0.5.7', 80, 'dsr', 'sed')}`,
      refusal: /ipvs: add service tcp 10\.0\.5\.7:80: scheduler or persistence engine not available/,
      undo: async () => {
        await runChecked('modprobe ip_vs_sed', ['modprobe', ...MODULES, 'ip_vs_sed']);
      },
    };
  },
  missingProgram: {
    path: '/nonexistent',
    config: `backend: ipvs\nservices:\n${service('10.0.5.1', 80, 'fullnat')}`,
    message: /iptables: not installed; fullnat on IPVS needs it/,
  },
});

before(async () => {
  await run(['ip', 'link', 'add', 'slbx0', 'type', 'veth', 'peer', 'name', 'slbx1']);
  await runChecked('addr', ['ip', 'addr', 'replace', '10.0.5.254/24', 'dev', 'slbx0']);
  await runChecked('up', ['ip', 'link', 'set', 'slbx0', 'up']);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-exit-'));
  fs.chmodSync(dir, 0o755);
});
after(async () => {
  await run([process.execPath, CLI_ENTRY, 'destroy']);
  await run(['ip', 'link', 'del', 'slbx0']);
  fs.rmSync(dir, { recursive: true, force: true });
});
exitCodeSuite('IPVS (user-mode-linux)', env);
