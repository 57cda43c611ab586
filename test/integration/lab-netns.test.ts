// The netns lab itself: the reference topology with nothing in the root
// namespace, a refusal to build over an existing lab, and a clean teardown
// even of a lab left half-made by a crash.
import { describe, it } from 'node:test';
import { spawn } from 'node:child_process';
import * as assert from 'node:assert/strict';
import { labDown, labExec, labExists, labUp, nsName } from '../../src/lab/netns';
import { LAB_HOSTS } from '../../src/lab/topology';
import { run, runChecked } from '../../src/util/exec';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const uniqueLab = (tag: string) => `n${tag}${(process.pid % 1000).toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;

async function rootNamespaceView(): Promise<string> {
  const links = await run(['ip', '-o', 'link', 'show']);
  const addrs = await run(['ip', '-o', '-4', 'addr', 'show']);
  const routes = await run(['ip', 'route', 'show']);
  return [links.stdout.replace(/\\.*$/gm, '').split('\n').map((l) => l.split(':').slice(0, 2).join(':')).join('\n'), addrs.stdout.replace(/valid_lft.*$/gm, ''), routes.stdout].join('\n');
}

describe('netns lab', { skip: isRoot ? false : 'needs root' }, () => {
  it('builds the reference topology without touching the root namespace, and removes it all', async () => {
    const lab = uniqueLab('a');
    const before = await rootNamespaceView();
    try {
      await labUp(lab);
      assert.deepEqual((await labExists(lab)).missing, []);
      assert.equal(await rootNamespaceView(), before, 'the root namespace is unchanged');
      const ping = await labExec(lab, 'client', ['ping', '-c', '1', '-W', '2', '172.16.75.82']);
      assert.equal(ping.code, 0, 'the client reaches RS1 through the router');
      const http = await labExec(lab, 'client', ['curl', '-s', '--max-time', '3', 'http://172.16.75.85/']);
      assert.match(http.stdout, /^rs2 saw client 10\.8\.21\.40:\d+ on 172\.16\.75\.85:80\n$/);
      await assert.rejects(labUp(lab), /already exists.*lab down/);
    } finally {
      const { removed } = await labDown(lab);
      assert.equal(removed.length, LAB_HOSTS.length);
    }
    assert.deepEqual((await labExists(lab)).present, []);
    assert.deepEqual((await labDown(lab)).removed, [], 'a second lab down has nothing to do');
    assert.equal(await rootNamespaceView(), before);
  });

  it('lab down cleans a lab left half-made, processes included', async () => {
    const lab = uniqueLab('h');
    await runChecked('ns', ['ip', 'netns', 'add', nsName(lab, 'client')]);
    await runChecked('ns', ['ip', 'netns', 'add', nsName(lab, 'rs1')]);
    const sleeper = spawn('ip', ['netns', 'exec', nsName(lab, 'rs1'), 'sleep', '60'], { stdio: 'ignore' });
    const ended = new Promise<string>((resolve) => sleeper.on('exit', (code, signal) => resolve(String(signal ?? code))));
    await new Promise((r) => setTimeout(r, 200));
    const { removed } = await labDown(lab);
    assert.deepEqual(removed.sort(), [nsName(lab, 'client'), nsName(lab, 'rs1')].sort());
    assert.deepEqual((await labExists(lab)).present, []);
    const how = await Promise.race([ended, new Promise<string>((r) => setTimeout(() => r('still running'), 3000))]);
    assert.equal(how, 'SIGTERM', 'the process left in the lab was stopped');
  });

  it('rejects lab names that would make bad namespace or interface names', async () => {
    await assert.rejects(labUp('Bad Name'), /lab name "Bad Name" must be/);
  });
});
