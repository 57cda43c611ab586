// A program's input handed over whole before it starts (the nft script):
// the child reads exactly the content, and the content cannot be changed
// or cut afterwards.
import { it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { run } from '../../src/util/exec';
import { native } from '../../src/util/netns';

it('a sealed input is read whole by the child, and cannot be written to', async () => {
  const content = `${'add element ip slbctl members { x }\n'.repeat(20_000)}end\n`;
  const fd = native().sealedInput(content);
  try {
    const r = await run(['cat'], { stdinFd: fd });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.length, content.length);
    assert.equal(r.stdout, content);
    assert.throws(() => fs.writeSync(fd, 'more'), /EPERM|EBADF/);
  } finally {
    fs.closeSync(fd);
  }
});
