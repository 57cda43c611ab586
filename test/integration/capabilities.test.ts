// The systemd unit runs slbctl as an unprivileged user with only
// CAP_NET_ADMIN and CAP_NET_RAW. This runs `slbctl run` exactly so (setpriv,
// in the lab's LB namespace) and shows it programs and reprograms the kernel;
// without CAP_NET_ADMIN it refuses with a clear sentence; and the unit's
// sandbox scores at most 2.5 in `systemd-analyze security --offline`.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { configureRealServers, labDown, labStateDir, labUp, nsName } from '../../src/lab/netns';
import { REFERENCE_TOPOLOGY, addressOf } from '../../src/lab/topology';
import { CLI_ENTRY } from '../../src/util/self';
import { run } from '../../src/util/exec';
import { controllerConfig } from '../helpers/controller-scenarios';
import { LogLine, RunningController, startController } from '../../src/lab/harness';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const NOBODY = '65534';
const UNIT = path.resolve(__dirname, '..', '..', '..', 'systemd', 'slbctl.service');

/** The capability set of the unit, read from the unit itself. */
function unitCaps(): string[] {
  const text = fs.readFileSync(UNIT, 'utf8');
  const ambient = /^AmbientCapabilities=(.*)$/m.exec(text)?.[1]?.trim().split(/\s+/) ?? [];
  const bounding = /^CapabilityBoundingSet=(.*)$/m.exec(text)?.[1]?.trim().split(/\s+/) ?? [];
  assert.deepEqual(ambient, bounding, 'the unit grants exactly what it bounds');
  return ambient.map((c) => c.replace(/^CAP_/, '').toLowerCase());
}

function setpriv(uid: string, caps: string[]): string[] {
  const set = ['-all', ...caps.map((c) => `+${c}`)].join(',');
  return [
    'setpriv',
    `--reuid=${uid}`,
    `--regid=${uid}`,
    '--clear-groups',
    `--inh-caps=${set}`,
    `--ambient-caps=${set}`,
    `--bounding-set=${set}`,
    '--',
  ];
}

describe("slbctl with only the systemd unit's capabilities", { skip: isRoot ? false : 'needs root' }, () => {
  const lab = `cap${process.pid % 1000}${Math.floor(Math.random() * 36).toString(36)}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-caps-'));
  const runtime = path.join(dir, 'run');
  const file = path.join(dir, 'slbctl.json');
  let uid = NOBODY;
  let controller: RunningController | undefined;
  const caps = unitCaps();

  before(async () => {
    await labUp(lab, REFERENCE_TOPOLOGY);
    await configureRealServers(lab, 'fullnat', REFERENCE_TOPOLOGY);
    fs.chmodSync(dir, 0o755);
    fs.mkdirSync(runtime);
    fs.chownSync(runtime, Number(NOBODY), Number(NOBODY));
    fs.writeFileSync(file, controllerConfig('fullnat', 'nft', { interval: 200, timeout: 150, rise: 2, fall: 2 }));
    // A checkout under a private home is unreadable by nobody: then uid 0 keeps only the unit's capabilities (no CAP_DAC_OVERRIDE, no other).
    const readable = await run([...setpriv(NOBODY, []), process.execPath, '-e', `require(${JSON.stringify(CLI_ENTRY)})`]);
    if (readable.code !== 0) uid = '0';
  });
  after(async () => {
    await controller?.stop();
    await labDown(lab);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the unit grants CAP_NET_ADMIN and CAP_NET_RAW only, to a dynamic user, and reloads with SIGHUP', () => {
    assert.deepEqual(caps, ['net_admin', 'net_raw']);
    const text = fs.readFileSync(UNIT, 'utf8');
    assert.match(text, /^DynamicUser=yes$/m);
    assert.match(text, /^RuntimeDirectory=slbctl$/m);
    assert.match(text, /^ExecStart=\S+slbctl run -f \S+ --log-format json --metrics 127\.0\.0\.1:9469$/m);
    assert.match(text, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
    assert.doesNotMatch(text, /ProtectKernelTunables=yes/, '/proc/sys/net must stay writable');
  });

  it("the unit's sandbox scores at most 2.5 in systemd-analyze security", async (t) => {
    // --offline judges the file alone: no systemd as PID 1 is needed (systemd 250 and later).
    const r = await run(['systemd-analyze', 'security', '--offline=true', '--no-pager', UNIT]);
    if (r.code === 127 || /unrecognized option|unknown option/i.test(r.stderr)) {
      t.skip(`systemd-analyze security --offline is not available here: ${r.stderr.trim().split('\n')[0] ?? ''}`);
      return;
    }
    const score = /Overall exposure level for \S+: (\d+(?:\.\d+)?)/.exec(r.stdout)?.[1];
    assert.ok(score, `systemd-analyze printed a score: ${r.stdout}${r.stderr}`);
    t.diagnostic(`exposure ${score}`);
    assert.ok(
      Number(score) <= 2.5,
      `exposure ${score} is above 2.5:\n${r.stdout
        .split('\n')
        .filter((l) => l.startsWith('✗'))
        .join('\n')}`,
    );
    // What slbctl itself needs stays allowed.
    const text = fs.readFileSync(UNIT, 'utf8');
    assert.match(text, /^RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_PACKET$/m);
    assert.match(text, /^MemoryDenyWriteExecute=no$/m, "node's JIT");
  });

  it('without CAP_NET_ADMIN, apply refuses and says what is missing', async () => {
    const r = await run([...setpriv(uid, []), process.execPath, CLI_ENTRY, 'apply', '-f', file], {
      netns: nsName(lab, 'lb'),
      env: { ...process.env, RUNTIME_DIRECTORY: runtime },
    });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /needs CAP_NET_ADMIN/);
  });

  it('`slbctl run` refuses before touching the kernel: DSR probes without CAP_NET_RAW, a run directory it cannot write', async () => {
    const dsr = path.join(dir, 'dsr.json');
    fs.writeFileSync(dsr, controllerConfig('dsr', 'nft', { interval: 200, timeout: 150, rise: 2, fall: 2 }, { type: 'tcp' }));
    const noRaw = await run([...setpriv(uid, ['net_admin']), process.execPath, CLI_ENTRY, 'run', '-f', dsr, '--metrics', 'off'], {
      netns: nsName(lab, 'lb'),
      env: { ...process.env, RUNTIME_DIRECTORY: runtime },
      timeoutMs: 20_000,
    });
    assert.equal(noRaw.code, 3, noRaw.stderr);
    assert.match(noRaw.stderr, /the health checks of web \(tcp\/172\.16\.75\.84:80\) need CAP_NET_RAW/);
    const readOnly = path.join(dir, 'read-only');
    fs.mkdirSync(readOnly, { mode: 0o555 });
    const noDir = await run([...setpriv(uid, caps), process.execPath, CLI_ENTRY, 'run', '-f', file, '--metrics', 'off'], {
      netns: nsName(lab, 'lb'),
      env: { ...process.env, RUNTIME_DIRECTORY: readOnly },
      timeoutMs: 20_000,
    });
    assert.equal(noDir.code, 3, noDir.stderr);
    assert.match(noDir.stderr, /cannot write its records \(status, drains, IPVS ownership\) under .*read-only: EACCES/);
    const tables = await run(['nft', 'list', 'tables'], { netns: nsName(lab, 'lb') });
    assert.equal(tables.stdout.trim(), '', 'nothing programmed');
    const addrs = await run(['ip', '-n', nsName(lab, 'lb'), '-4', '-o', 'addr', 'show']);
    assert.doesNotMatch(addrs.stdout, /172\.16\.75\.84/, 'no VIP added');
  });

  it('`slbctl run` with only those capabilities programs the kernel, checks health and reprograms on a failure', async (t) => {
    t.diagnostic(`running as uid ${uid} with ${caps.join(', ')}`);
    const prefix = ['env', `RUNTIME_DIRECTORY=${runtime}`, ...setpriv(uid, caps)];
    controller = startController(nsName(lab, 'lb'), file, ['--metrics', '127.0.0.1:9470'], prefix);
    const c = controller;
    await c.waitFor((l: LogLine) => l.event === 'start' && l.msg.startsWith('running'), 20_000, 'the controller running');
    const table = await run(['nft', 'list', 'table', 'ip', 'slbctl'], { netns: nsName(lab, 'lb') });
    assert.equal(table.code, 0, 'the nft table exists');
    const record = fs.readdirSync(path.join(runtime, 'controller'));
    assert.equal(record.length, 1, 'the status record is in RUNTIME_DIRECTORY');
    assert.equal(fs.statSync(path.join(runtime, 'controller', record[0])).uid, Number(uid));
    const pid = Number(fs.readFileSync(path.join(labStateDir(lab), 'rs1-http.pid'), 'utf8'));
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    const rs1 = `${addressOf(REFERENCE_TOPOLOGY, 'rs1')}:80`;
    await c.waitFor(
      (l) => l.event === 'health' && l.realServer === rs1 && l.to === 'down' && Date.parse(l.time) >= killedAt,
      5000,
      'rs1 down',
    );
    await c.waitFor((l) => l.event === 'apply' && Date.parse(l.time) >= killedAt, 5000, 'the apply that quiesces rs1');
    assert.ok(
      !c.logs.some((l) => l.level === 'error'),
      `no errors: ${c.logs
        .filter((l) => l.level === 'error')
        .map((l) => l.msg)
        .join('; ')}`,
    );
    const metrics = await run(['curl', '-s', 'http://127.0.0.1:9470/metrics'], { netns: nsName(lab, 'lb') });
    assert.match(
      metrics.stdout,
      /slbctl_real_server_weight\{service="web",vip="tcp\/172\.16\.75\.84:80",real_server="172\.16\.75\.82:80"\} 0/,
    );
  });
});
