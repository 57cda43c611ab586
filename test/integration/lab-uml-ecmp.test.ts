// Two balancers on user-mode-linux: `lab up --provider uml --balancers 2` and
// `lab mode dsr --ha ecmp` run the netns lab's ECMP inside the guest on IPVS
// (scheduler mh on both, BIRD announcing the VIP, the router's BIRD merging
// both paths); verify judges the spread and a connection carried across
// `lab fail lb`; fail and recover are forwarded to the guest.
import { after, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CLI_ENTRY } from '../../src/util/self';
import { umlAvailable } from '../../src/uml/run';
import { run } from '../../src/util/exec';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const lab = `ue${process.pid % 10000}`;
const slbctl = (...args: string[]) => run([process.execPath, CLI_ENTRY, ...args], { timeoutMs: 8 * 60 * 1000 });

describe('two balancers with ECMP on user-mode-linux', { skip: isRoot ? false : 'needs root', timeout: 30 * 60 * 1000 }, () => {
  const out = fs.mkdtempSync(path.join('/var/tmp', 'slbctl-uml-ecmp-'));
  after(async () => {
    await slbctl('lab', 'down', '--name', lab);
    fs.rmSync(out, { recursive: true, force: true });
  });

  it('up --balancers 2, mode dsr --ha ecmp on IPVS mh, verify with failover, fail and recover', async () => {
    assert.equal(umlAvailable(), undefined, 'user-mode-linux is installed by scripts/setup.sh');
    const up = await slbctl('lab', 'up', '--provider', 'uml', '--balancers', '2', '--name', lab);
    assert.equal(up.code, 0, up.stdout + up.stderr);
    assert.match(up.stdout, new RegExp(`${lab}-lb2 +eth0 172\\.16\\.75\\.86/24`));

    const mode = await slbctl('lab', 'mode', 'dsr', '--ha', 'ecmp', '--name', lab);
    assert.equal(mode.code, 0, mode.stdout + mode.stderr);
    assert.match(mode.stdout, /ECMP, L4 hash/);
    const ipvsadm = await slbctl('lab', 'exec', '--name', lab, 'lb', '--', 'ipvsadm', '-Ln');
    assert.equal(ipvsadm.code, 0, ipvsadm.stdout);
    assert.match(ipvsadm.stdout, /TCP +172\.16\.75\.84:80 mh \(mh-port\)/, ipvsadm.stdout);

    const verify = await slbctl('lab', 'verify', '--name', lab, '--requests', '8', '--out', out);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    assert.match(verify.stdout, /verdict: PASS: dsr/);
    assert.match(verify.stdout, /completes after it .* pass/);
    assert.match(verify.stdout, /same real server .* pass/);

    const fail = await slbctl('lab', 'fail', 'lb2', '--name', lab);
    assert.equal(fail.code, 0, fail.stdout + fail.stderr);
    const routes = await slbctl('lab', 'exec', '--name', lab, 'router', '--', 'ip', 'route', 'show', '172.16.75.84');
    assert.doesNotMatch(routes.stdout, /172\.16\.75\.86/, routes.stdout);
    const recover = await slbctl('lab', 'recover', 'lb2', '--name', lab);
    assert.equal(recover.code, 0, recover.stdout + recover.stderr);
    // recover waits until the router has both next hops again (and says so).
    assert.match(recover.stdout, /172\.16\.75\.84 via 172\.16\.75\.83 and 172\.16\.75\.86/, recover.stdout);

    const down = await slbctl('lab', 'down', '--name', lab);
    assert.equal(down.code, 0, down.stdout + down.stderr);
  });
});
