// Files slbctl writes as root (pcaps, reports) never follow a link another
// user planted. Node has no openat(), so the walk holds each directory open
// and names the next step through /proc/self/fd/N/<name>: the kernel resolves
// that inside the directory already opened, so renaming or replacing
// anything above it cannot redirect the walk. A link on the way is followed
// only when root or slbctl's own user owns it (nobody else can have made it);
// the directory written into must be a real directory owned by root or that
// user and writable by nobody else; the file goes to a fresh name opened with
// O_CREAT | O_EXCL | O_NOFOLLOW and is then renamed over the final name.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_DIRECTORY } = fs.constants;
const MAX_LINKS = 40; // the kernel's own limit (ELOOP)

/** A write refused because its path is not safe to write as this user; the message is one sentence. */
export class UnsafePathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsafePathError';
  }
}

const euid = (): number => (typeof process.geteuid === 'function' ? process.geteuid() : 0);
const trusted = (uid: number): boolean => uid === 0 || uid === euid();
const at = (dirFd: number, name: string): string => `/proc/self/fd/${dirFd}/${name}`;

function lstatAt(dirFd: number, name: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(at(dirFd, name));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

function openDirAt(dirFd: number, name: string, shown: string): number {
  try {
    return fs.openSync(at(dirFd, name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  } catch (e) {
    // Replaced by a link or a file between the look and the open.
    throw new UnsafePathError(
      `refusing to write into ${shown}: it changed while slbctl was checking it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
}

/** Why a directory slbctl writes into cannot be trusted, or undefined. */
function untrustedDirectory(st: fs.Stats): string | undefined {
  if (!trusted(st.uid))
    return `it is owned by uid ${st.uid}, who could swap what slbctl writes there; use a directory owned by root or uid ${euid()}`;
  // Sticky (like /tmp): others may add names but not replace ours.
  if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0)
    return `it is writable by other users (mode ${(st.mode & 0o7777).toString(8)}); chmod go-w it or choose another directory`;
  return undefined;
}

/**
 * Open `dir` as a held directory descriptor, creating what is missing (mode
 * 0755), and check it as described above. The caller closes the descriptor.
 */
export function openTrustedDirectory(dir: string): { fd: number; path: string } {
  let fd = fs.openSync('/', O_RDONLY | O_DIRECTORY);
  let shown = '/';
  let parts = path.resolve(dir).split('/').filter(Boolean);
  let links = 0;
  try {
    while (parts.length > 0) {
      const name = parts.shift() as string;
      if (name === '.') continue;
      const here = path.join(shown, name);
      let st = lstatAt(fd, name);
      if (!st) {
        try {
          fs.mkdirSync(at(fd, name), { mode: 0o755 });
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        }
        st = lstatAt(fd, name);
        if (!st) throw new UnsafePathError(`refusing to write into ${here}: it vanished as soon as slbctl made it`);
      }
      if (st.isSymbolicLink()) {
        const target = fs.readlinkSync(at(fd, name));
        if (!trusted(st.uid))
          throw new UnsafePathError(
            `refusing to write under ${here}: it is a symbolic link (to ${target}) owned by uid ${st.uid}, and slbctl never follows a link another user could have planted; remove it or choose another directory`,
          );
        if (++links > MAX_LINKS) throw new UnsafePathError(`refusing to write under ${here}: too many levels of symbolic links`);
        if (path.isAbsolute(target)) {
          fs.closeSync(fd);
          fd = fs.openSync('/', O_RDONLY | O_DIRECTORY);
          shown = '/';
        }
        parts = [...target.split('/').filter(Boolean), ...parts];
        continue;
      }
      // '..' is never a link; it leaves the directory held, as the kernel would.
      if (!st.isDirectory()) throw new UnsafePathError(`refusing to write under ${here}: it is not a directory`);
      const next = openDirAt(fd, name, here);
      fs.closeSync(fd);
      fd = next;
      shown = name === '..' ? path.dirname(shown) : here;
    }
    const why = untrustedDirectory(fs.fstatSync(fd));
    if (why) throw new UnsafePathError(`refusing to write into ${shown}: ${why}`);
    return { fd, path: shown };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/** Make (or check) a directory slbctl will write into; its real path. */
export function trustedDirectory(dir: string): string {
  const d = openTrustedDirectory(dir);
  fs.closeSync(d.fd);
  return d.path;
}

/**
 * Write `file` without following any link: a fresh name in the checked
 * directory, then a rename over the final name. A link (or anything but a
 * regular file) already at the final name is refused rather than replaced, so
 * whoever planted it hears about it.
 */
export function writeFileNoFollow(file: string, data: string | Uint8Array, mode = 0o644): string {
  const name = path.basename(file);
  const dir = openTrustedDirectory(path.dirname(path.resolve(file)));
  const final = path.join(dir.path, name);
  try {
    const existing = lstatAt(dir.fd, name);
    if (existing?.isSymbolicLink())
      throw new UnsafePathError(
        `refusing to write ${final}: it is a symbolic link (to ${fs.readlinkSync(at(dir.fd, name))}) owned by uid ${existing.uid}, and slbctl never writes through a link; remove it or choose another directory`,
      );
    if (existing && !existing.isFile())
      throw new UnsafePathError(
        `refusing to write ${final}: something other than a regular file is there; remove it or choose another directory`,
      );
    const temp = `.${name}.${process.pid}.${crypto.randomBytes(6).toString('hex')}.tmp`;
    const out = fs.openSync(at(dir.fd, temp), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
    try {
      try {
        fs.writeFileSync(out, data);
      } finally {
        fs.closeSync(out);
      }
      fs.renameSync(at(dir.fd, temp), at(dir.fd, name));
    } catch (e) {
      try {
        fs.unlinkSync(at(dir.fd, temp));
      } catch {
        // already renamed, or never made: nothing of ours is left
      }
      throw e;
    }
    return final;
  } finally {
    fs.closeSync(dir.fd);
  }
}
