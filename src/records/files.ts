// Reading and writing slbctl's record files under the runtime directory.
// Written to a fresh temporary name (created exclusively, never through a
// link), flushed, then renamed over the record: a crash leaves the old record
// or the new one, never half of one, and a link planted in the directory is
// never followed.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Make the record directory (0700, owned by whoever runs slbctl), refusing one that is a link. */
export function ensureDirectory(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = fs.lstatSync(dir);
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory (a link?); remove it`);
}

/** `compact`: one line, for large records read by programs only (the nftables applied state). */
export function writeJsonAtomic(file: string, data: unknown, compact = false): void {
  writeTextAtomic(file, compact ? JSON.stringify(data) : JSON.stringify(data, null, 2));
}

/** A record already serialised (its writer keeps the JSON of parts that did not change). */
export function writeTextAtomic(file: string, text: string): void {
  ensureDirectory(path.dirname(file));
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  try {
    fs.writeSync(fd, `${text}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  removeLeftovers(file);
}

/**
 * One line appended to a journal beside a record, in one write (a crash leaves
 * the line whole or a torn last line, which readers take for the journal's
 * end), flushed; never through a link.
 */
export function appendLine(file: string, line: string): void {
  ensureDirectory(path.dirname(file));
  const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
  try {
    fs.writeSync(fd, `${line}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** A file's inode, size and mtime (ns) as one string, which changes when a writer replaces or rewrites it; undefined: no file. */
export function fileIdentity(file: string): string | undefined {
  try {
    const st = fs.statSync(file, { bigint: true });
    return `${st.ino}/${st.size}/${st.mtimeNs}`;
  } catch {
    return undefined;
  }
}

/** A file's text, never through a link; undefined when it cannot be read. */
export function readText(file: string): string | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    return fs.readFileSync(fd, 'utf8');
  } catch {
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Temporary files of this record left by writers that were killed before
 * their rename (FILE.PID.HEX.tmp with PID gone): nothing reads them, so
 * without this they would pile up. A running writer's file is left alone.
 */
export function removeLeftovers(file: string): void {
  const prefix = `${path.basename(file)}.`;
  let names: string[];
  try {
    names = fs.readdirSync(path.dirname(file));
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d+)\.[0-9a-f]{8}\.tmp$/.exec(name.slice(prefix.length));
    if (m && !processExists(Number(m[1]))) fs.rmSync(path.join(path.dirname(file), name), { force: true });
  }
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export type ReadResult = { kind: 'absent' } | { kind: 'ok'; data: unknown } | { kind: 'unreadable'; why: string };

/** A record's JSON; a link or a file that does not parse is reported as unreadable, never followed or trusted. */
export function readJson(file: string): ReadResult {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { kind: 'absent' };
    return { kind: 'unreadable', why: code === 'ELOOP' ? 'it is a symbolic link' : (e as Error).message };
  }
  try {
    return { kind: 'ok', data: JSON.parse(fs.readFileSync(fd, 'utf8')) as unknown };
  } catch (e) {
    return { kind: 'unreadable', why: (e as Error).message };
  } finally {
    fs.closeSync(fd);
  }
}

/** Move a record that must not be used out of the way (kept for a human to read). */
export function setAside(file: string, suffix: string): string {
  const to = `${file}.${suffix}`;
  try {
    fs.renameSync(file, to);
  } catch {
    fs.rmSync(file, { force: true });
  }
  return to;
}
