// Record files written atomically: a temporary file left by a writer killed
// before its rename is removed by the next write of the same record; one of a
// writer still running, or of another record, is left alone.
import { it } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeJsonAtomic } from '../../src/records/files';

it('the next write removes the leftovers of killed writers of that record only', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-files-'));
  try {
    const dead = Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
    const file = path.join(dir, 'net-4026531840.json');
    const stale = `${file}.${dead}.0123abcd.tmp`;
    const live = `${file}.${process.pid}.89abcdef.tmp`;
    const other = path.join(dir, `net-4026531999.json.${dead}.0123abcd.tmp`);
    for (const f of [stale, live, other]) fs.writeFileSync(f, '{');
    writeJsonAtomic(file, { a: 1 });
    assert.deepEqual(JSON.parse(fs.readFileSync(file, 'utf8')), { a: 1 });
    assert.equal(fs.existsSync(stale), false, "a killed writer's temporary file is removed");
    assert.equal(fs.existsSync(live), true, "a running writer's is not");
    assert.equal(fs.existsSync(other), true, "another record's is not");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
