// Follows one running `slbctl apply` from outside, to kill it in a chosen
// phase: when its ownership record is rewritten (the intent, written just
// before the VIPs are added), when its nft child starts (the transaction) and
// when that child is gone (then the VIPs due for removal are removed).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Started, sleep } from './processes';

/**
 * nft-start: the moment the transaction's nft is running (its script must be whole by then).
 * record-write: while the ownership record is being written (its temporary file exists).
 */
export type Phase = 'start' | 'record-write' | 'adding' | 'nft-start' | 'nft' | 'removing';

export interface Timeline {
  start: number;
  intent?: number;
  nftStart?: number;
  nftEnd?: number;
  /** The record written again once the VIPs due for removal are gone. */
  final?: number;
  exit?: number;
  /** A temporary file of the record seen (a write in progress). */
  recordWrite?: number;
}

function inodeOf(file: string): number | undefined {
  try {
    return fs.statSync(file).ino;
  } catch {
    return undefined;
  }
}

/** The commands of the direct children of `pid` (/proc/PID/task/PID/children). */
export function childCommands(pid: number): string[] {
  let list: string;
  try {
    list = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8');
  } catch {
    return [];
  }
  return list
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .flatMap((c) => {
      try {
        return [fs.readFileSync(`/proc/${c}/comm`, 'utf8').trim()];
      } catch {
        return [];
      }
    });
}

/** Poll the apply every ~2 ms and note when each phase begins. */
export class ApplyTracker {
  readonly t: Timeline;
  private readonly firstInode: number | undefined;
  private intentInode: number | undefined;
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(
    private readonly apply: Started,
    private readonly recordFile: string,
  ) {
    this.t = { start: Date.now() };
    this.firstInode = inodeOf(recordFile);
    void apply.exited.then(() => {
      this.t.exit ??= Date.now();
    });
    this.loop = this.poll();
  }

  private async poll(): Promise<void> {
    while (!this.stopped) {
      const now = Date.now();
      if (this.apply.done()) return;
      // The record is replaced by a rename: a new inode is a new version.
      if (this.t.recordWrite === undefined && this.writing()) this.t.recordWrite = now;
      const inode = inodeOf(this.recordFile);
      if (this.t.intent === undefined && inode !== this.firstInode) {
        this.t.intent = now;
        this.intentInode = inode;
      } else if (this.t.intent !== undefined && this.t.final === undefined && inode !== this.intentInode) this.t.final = now;
      // nft runs during planning too (listing the tables); the transaction's nft is the one after the intent.
      const nft = this.t.intent !== undefined && childCommands(this.apply.pid).includes('nft');
      if (nft && this.t.nftStart === undefined) this.t.nftStart = now;
      if (!nft && this.t.nftStart !== undefined && this.t.nftEnd === undefined) this.t.nftEnd = now;
      await sleep(2);
    }
  }

  private writing(): boolean {
    const prefix = `${path.basename(this.recordFile)}.`;
    try {
      return fs.readdirSync(path.dirname(this.recordFile)).some((n) => n.startsWith(prefix) && n.endsWith('.tmp'));
    } catch {
      return false;
    }
  }

  /** When `phase` began (undefined: not yet, or the apply ended without reaching it). */
  began(phase: Phase): number | undefined {
    if (phase === 'start') return this.t.start;
    if (phase === 'record-write') return this.t.recordWrite;
    if (phase === 'adding') return this.t.intent;
    if (phase === 'nft' || phase === 'nft-start') return this.t.nftStart;
    return this.t.nftEnd;
  }

  /**
   * Wait until `delayMs` after `phase` began and return true, or false when
   * the apply exited first.
   */
  async waitInto(phase: Phase, delayMs: number): Promise<boolean> {
    for (;;) {
      if (this.apply.done()) return false;
      const began = this.began(phase);
      if (began !== undefined && Date.now() >= began + delayMs) return true;
      await sleep(1);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}
