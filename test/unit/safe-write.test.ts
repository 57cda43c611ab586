// Files written as root never follow links: `lab verify` writes its pcaps
// under ./slbctl-pcaps/..., where an unprivileged user could plant a link to
// a root-owned file. Each case plants what such a user can (as uid 65534,
// with setpriv, or a link chowned to it) and checks that the write is refused
// in one sentence and the target is untouched; then what must keep working.
import { after, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { UnsafePathError, trustedDirectory, writeFileNoFollow } from '../../src/util/safe-write';
import { writePcap } from '../../src/capture/pcap';
import { prepareOutputDirectory } from '../../src/verify/run';
import { LabError } from '../../src/lab/errors';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const NOBODY = 65534;
const base = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-safe-'));
// Other users must reach into it, as they could a project directory.
fs.chmodSync(base, 0o755);
after(() => fs.rmSync(base, { recursive: true, force: true }));

let n = 0;
/** A fresh directory of its own for one case, and a root-owned "victim" file beside it. */
function scene(): { dir: string; victim: string } {
  const dir = path.join(base, `case${++n}`);
  fs.mkdirSync(dir, { mode: 0o755 });
  const victim = path.join(dir, 'root-owned-secret');
  fs.writeFileSync(victim, 'do not touch\n', { mode: 0o600 });
  return { dir, victim };
}

/** Run a command as uid/gid 65534 with no groups, as an unprivileged user would. */
function asNobody(argv: string[]): void {
  const r = spawnSync('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', ...argv], { encoding: 'utf8' });
  assert.equal(r.status, 0, `setpriv ${argv.join(' ')}: ${r.stderr}`);
}

function assertUntouched(victim: string): void {
  assert.equal(fs.readFileSync(victim, 'utf8'), 'do not touch\n');
  assert.equal(fs.statSync(victim).uid, 0);
}

/** The refusal is one sentence: no line breaks, one full stop at most (at the end). */
function oneSentence(e: unknown, pattern: RegExp): boolean {
  assert.ok(e instanceof UnsafePathError, String(e));
  assert.doesNotMatch(e.message, /\n/);
  assert.match(e.message, pattern);
  return true;
}

describe('writeFileNoFollow refuses what another user planted', { skip: isRoot ? false : 'needs root (to plant as another user)' }, () => {
  it("a link at the file's own name, in a directory slbctl made: refused, the target untouched", () => {
    const { dir, victim } = scene();
    const out = path.join(dir, 'slbctl-pcaps', 'slb', 'dsr');
    trustedDirectory(out);
    const planted = path.join(out, 'client.pcap');
    fs.symlinkSync(victim, planted);
    fs.lchownSync(planted, NOBODY, NOBODY);
    assert.throws(
      () => writeFileNoFollow(planted, 'pcap bytes'),
      (e) =>
        oneSentence(
          e,
          new RegExp(
            `refusing to write ${planted}: it is a symbolic link \\(to ${victim}\\) owned by uid ${NOBODY}, and slbctl never writes through a link; remove it`,
          ),
        ),
    );
    assertUntouched(victim);
    assert.deepEqual(fs.readdirSync(out), ['client.pcap'], 'no temporary file is left behind');
  });

  it('a link planted by uid 65534 in a directory it owns (setpriv ln -s): refused for the directory, the target untouched', () => {
    const { dir, victim } = scene();
    const pcaps = path.join(dir, 'slbctl-pcaps');
    fs.mkdirSync(pcaps);
    fs.chownSync(pcaps, NOBODY, NOBODY);
    asNobody(['mkdir', '-p', path.join(pcaps, 'slb', 'dsr')]);
    asNobody(['ln', '-s', victim, path.join(pcaps, 'slb', 'dsr', 'client.pcap')]);
    assert.throws(
      () => writePcap(path.join(pcaps, 'slb', 'dsr', 'client.pcap'), 'ETHERNET', []),
      (e) =>
        oneSentence(
          e,
          new RegExp(`refusing to write into ${pcaps}/slb/dsr: it is owned by uid ${NOBODY}, who could swap what slbctl writes there`),
        ),
    );
    assertUntouched(victim);
  });

  it("a directory on the way that is uid 65534's link (setpriv ln -s): refused, nothing written where it points", () => {
    const { dir, victim } = scene();
    const pcaps = path.join(dir, 'slbctl-pcaps');
    fs.mkdirSync(pcaps, { mode: 0o777 });
    fs.chmodSync(pcaps, 0o777);
    const elsewhere = path.join(dir, 'root-only');
    fs.mkdirSync(elsewhere, { mode: 0o700 });
    asNobody(['ln', '-s', elsewhere, path.join(pcaps, 'slb')]);
    assert.throws(
      () => writeFileNoFollow(path.join(pcaps, 'slb', 'dsr', 'lb.pcap'), 'x'),
      (e) =>
        oneSentence(
          e,
          new RegExp(
            `refusing to write under ${pcaps}/slb: it is a symbolic link \\(to ${elsewhere}\\) owned by uid ${NOBODY}, and slbctl never follows a link another user could have planted`,
          ),
        ),
    );
    assert.deepEqual(fs.readdirSync(elsewhere), []);
    assertUntouched(victim);
  });

  it('the directory to write into is writable by everyone: refused', () => {
    const { dir } = scene();
    const open = path.join(dir, 'open');
    fs.mkdirSync(open);
    fs.chmodSync(open, 0o777);
    assert.throws(
      () => writeFileNoFollow(path.join(open, 'rs1.pcap'), 'x'),
      (e) => oneSentence(e, /it is writable by other users \(mode 777\); chmod go-w it/),
    );
    assert.deepEqual(fs.readdirSync(open), []);
  });

  it("lab verify's output directory is checked before anything is captured, and its refusal is a lab error", () => {
    const { dir } = scene();
    fs.symlinkSync('/etc', path.join(dir, 'slbctl-pcaps'));
    fs.lchownSync(path.join(dir, 'slbctl-pcaps'), NOBODY, NOBODY);
    assert.throws(
      () => prepareOutputDirectory(path.join(dir, 'slbctl-pcaps', 'slb', 'dsr')),
      (e) => e instanceof LabError && /is a symbolic link \(to \/etc\) owned by uid 65534/.test(e.message),
    );
    assert.equal(fs.existsSync('/etc/slb'), false);
  });
});

describe('writeFileNoFollow writes what it should', () => {
  it('makes the missing directories, writes the bytes under a fresh name and renames: nothing else is left', () => {
    const { dir } = scene();
    const file = path.join(dir, 'slbctl-pcaps', 'slb', 'fullnat', 'client.pcap');
    assert.equal(writeFileNoFollow(file, Buffer.from([1, 2, 3])), file);
    assert.deepEqual([...fs.readFileSync(file)], [1, 2, 3]);
    assert.equal(fs.statSync(file).mode & 0o777, 0o644);
    assert.deepEqual(fs.readdirSync(path.dirname(file)), ['client.pcap']);
    // A second verify replaces the first one's file.
    writeFileNoFollow(file, 'again');
    assert.equal(fs.readFileSync(file, 'utf8'), 'again');
    assert.deepEqual(fs.readdirSync(path.dirname(file)), ['client.pcap']);
  });

  it('follows a link its own user made (a link nobody else could have planted), and names the real path', () => {
    const { dir } = scene();
    const real = path.join(dir, 'real');
    fs.mkdirSync(real);
    fs.symlinkSync('real', path.join(dir, 'via-link'));
    assert.equal(writeFileNoFollow(path.join(dir, 'via-link', 'sub', 'f'), 'ok'), path.join(real, 'sub', 'f'));
    assert.equal(fs.readFileSync(path.join(real, 'sub', 'f'), 'utf8'), 'ok');
  });

  it("writes into a sticky directory like /tmp (others can add names there, not replace slbctl's)", () => {
    const { dir } = scene();
    const sticky = path.join(dir, 'sticky');
    fs.mkdirSync(sticky);
    fs.chmodSync(sticky, 0o1777);
    writeFileNoFollow(path.join(sticky, 'f'), 'ok');
    assert.equal(fs.readFileSync(path.join(sticky, 'f'), 'utf8'), 'ok');
  });

  it('refuses to make a directory where a file is', () => {
    const { victim } = scene();
    assert.throws(
      () => writeFileNoFollow(path.join(victim, 'f'), 'x'),
      (e) => oneSentence(e, /it is not a directory/),
    );
  });
});
