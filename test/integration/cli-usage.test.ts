// The reported case end to end, as root with the real handler: `lab up` with
// an option it does not have prints the usage, exits 2 and builds nothing.
// (test/unit/cli-usage.test.ts covers every command with handler spies.)
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { run } from '../../src/util/exec';
import { CLI_ENTRY } from '../../src/util/self';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
// Lab names are at most 12 characters.
const lab = `u${process.pid.toString(36)}${Math.floor(Math.random() * 36 ** 3).toString(36)}`.slice(0, 12);

async function labNamespaces(): Promise<string[]> {
  const r = await run(['ip', 'netns', 'list']);
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(`${lab}-`));
}

describe('a usage error changes nothing', { skip: isRoot ? false : 'needs root' }, () => {
  it('lab up --routers 2: exit 2, "Unknown argument", the usage of lab up, and no namespace', async () => {
    try {
      const r = await run([process.execPath, CLI_ENTRY, 'lab', 'up', '--routers', '2', '--name', lab], { timeoutMs: 120_000 });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /^slbctl lab up$/m);
      assert.match(r.stderr, /slbctl: Unknown argument: routers\n$/);
      assert.equal(r.stdout, '');
      assert.deepEqual(await labNamespaces(), []);
    } finally {
      // Were the handler to run after all, what it built goes again.
      if ((await labNamespaces()).length > 0) await run([process.execPath, CLI_ENTRY, 'lab', 'down', '--name', lab]);
    }
  });
});
