// The sentence naming the holder of a namespace's lock: a holder that has
// exited (a killed slbctl whose nft child still holds the lock) is said to be
// gone, not named as if it were still working.
import { it } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describeHolder } from '../../src/records/lock';

it('names a live holder by pid and command', () => {
  const text = describeHolder({ pid: process.pid, command: 'slbctl apply -f a.yaml', since: Date.now() - 2000 });
  assert.match(text, new RegExp(`^pid ${process.pid} \\(\`slbctl apply -f a\\.yaml\`, for [\\d.]+ s\\)$`));
});

it('says when the holder has exited and a program it started holds the lock', () => {
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const pid = Number(dead.stdout);
  assert.ok(pid > 0);
  const text = describeHolder({ pid, command: 'slbctl apply -f a.yaml', since: 0 });
  assert.equal(
    text,
    `pid ${pid} (\`slbctl apply -f a.yaml\`, which has exited; a program it started (nft, iptables) still holds the lock)`,
  );
});
