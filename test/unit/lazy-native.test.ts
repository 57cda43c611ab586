// The CLI must load where cap's and raw-socket's addons were built for
// another Node ABI (the VM lab runs Debian's node 18): only capturing and
// the ICMP/data-path probes may load them, when they start.
import { it } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

it('loading the whole CLI loads neither cap nor raw-socket', () => {
  const main = path.join(__dirname, '..', '..', 'src', 'cli', 'main.js');
  const script = `const M = require('module'); const load = M._load;
M._load = function (request, ...rest) { if (request === 'cap' || request === 'raw-socket') throw new Error('loaded ' + request + ' at import'); return load.call(this, request, ...rest); };
require(${JSON.stringify(main)});`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});
