// Which host folders the user-mode-linux guest is shown through hostfs: only
// those its private /tmp, /run and /dev/shm hide, as few mounts as possible,
// never the guest's own state.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { foldersToShow } from '../../src/uml/visible';

describe('foldersToShow', () => {
  it('leaves folders the guest sees through its hostfs root alone', () => {
    assert.deepEqual(foldersToShow(['/work/slbctl', '/var/tmp/x', '/root', '/tmpfoo']), { show: [], hidden: [] });
  });

  it('shows a checkout and a working directory under /tmp, /dev/shm or /run', () => {
    assert.deepEqual(foldersToShow(['/tmp/a/slbctl', '/tmp/out', '/dev/shm/x', '/run/user/0/w']).show, [
      '/tmp/out',
      '/dev/shm/x',
      '/tmp/a/slbctl',
      '/run/user/0/w',
    ]);
  });

  it('one mount for a folder inside another wanted or already shown', () => {
    assert.deepEqual(foldersToShow(['/tmp/a/b/c', '/tmp/a', '/tmp/a/']).show, ['/tmp/a']);
    assert.deepEqual(foldersToShow(['/tmp/a/b', '/tmp/c'], ['/tmp/a']).show, ['/tmp/c']);
    assert.deepEqual(foldersToShow(['/tmp/ab'], ['/tmp/a']).show, ['/tmp/ab'], 'a prefix of the name is not a parent');
  });

  it("never the private mount points themselves nor the guest's state, nor a name mount(8) would split", () => {
    const v = foldersToShow(['/tmp', '/run', '/run/netns/x', '/run/slbctl', '/tmp/a,b', '/tmp/ok']);
    assert.deepEqual(v.show, ['/tmp/ok']);
    assert.deepEqual(v.hidden, ['/tmp', '/run', '/run/netns/x', '/run/slbctl', '/tmp/a,b']);
  });
});
