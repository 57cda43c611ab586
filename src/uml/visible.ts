// Which host folders the user-mode-linux guest must be shown explicitly.
// The guest's root is the host's filesystem (hostfs), but it mounts private
// tmpfs over /tmp, /run and /dev/shm so that none of the host's runtime state
// (its /run/netns above all) is seen or touched. A checkout or a working
// directory under one of those would be hidden, and the guest could not even
// load slbctl; such folders are mounted back from the host
// (`mount -t hostfs -o HOSTPATH none GUESTPATH`), by scripts/uml-init.sh at
// boot and by the guest agent before a command that needs another one.
// Pure: used on both sides.
import * as path from 'node:path';

/** Mount points that are the guest's own (scripts/uml-init.sh). */
export const GUEST_PRIVATE = ['/tmp', '/run', '/dev/shm'];
/** The guest's own state under them, never replaced by the host's. */
const GUEST_STATE = ['/run/netns', '/run/slbctl', '/run/uml-modules'];

/** The file in a job folder that lists, one a line, the host folders shown at boot. */
export const SHOW_FILE = 'show';

const within = (p: string, dir: string) => p === dir || p.startsWith(`${dir}/`);

export interface Visibility {
  /** Host folders to mount into the guest at the same path, outermost first. */
  show: string[];
  /** Folders the guest cannot be shown (a private mount point itself, guest state, a name mount(8) would split). */
  hidden: string[];
}

/**
 * Of these host folders (absolute), those the guest's private mounts would
 * hide, reduced to the fewest mounts: a folder inside another one wanted, or
 * inside one already shown, needs none.
 */
export function foldersToShow(folders: readonly string[], shown: readonly string[] = []): Visibility {
  const hidden: string[] = [];
  const wanted: string[] = [];
  for (const f of folders.map((x) => path.resolve(x))) {
    if (!GUEST_PRIVATE.some((root) => within(f, root))) continue;
    // A comma would split the hostfs mount option; a newline the show file.
    if (GUEST_PRIVATE.includes(f) || GUEST_STATE.some((s) => within(f, s)) || /[,\n]/.test(f)) {
      if (!hidden.includes(f)) hidden.push(f);
      continue;
    }
    wanted.push(f);
  }
  const show: string[] = [];
  for (const f of [...new Set(wanted)].sort((a, b) => a.length - b.length)) {
    if ([...shown, ...show].some((s) => within(f, s))) continue;
    show.push(f);
  }
  return { show, hidden };
}
