// Talks to the kernel through the nft binary: one `nft -f -` per transaction,
// `nft -j list table` to read back. Arguments are always an array.
import * as fs from 'node:fs';
import { findCommand, run } from '../../util/exec';
import { native } from '../../util/netns';
import { KernelError, PreflightError } from '../../util/errors';
import { Family } from '../../model/state';
import { TABLE } from './names';

/** nft refused a transaction or a listing failed (exit 4). */
export class NftError extends KernelError {
  constructor(what: string, detail: string) {
    super(`nftables: ${what}: ${detail}`);
  }
}

/** The nft program is not installed (exit 3). */
export class NftMissingError extends PreflightError {}

export function requireNft(): string {
  const nft = findCommand('nft');
  if (!nft)
    throw new NftMissingError(
      'nftables: the nft program is not installed; install the nftables package (apt-get install nftables), or run `npm run setup`',
    );
  return nft;
}

let listings = 0;
/** Tables listed since the process started (tests see that a plan started from the record listed nothing). */
export const listingCount = (): number => listings;

/** The JSON listing of slbctl's table of this family, or undefined when it does not exist. */
export async function listTable(family: Family): Promise<unknown> {
  listings++;
  const r = await run([requireNft(), '-j', 'list', 'table', family, TABLE]);
  if (r.code !== 0) {
    if (/No such file or directory/.test(r.stderr)) return undefined;
    throw new NftError(`list table ${family} ${TABLE}`, r.stderr.trim());
  }
  try {
    return JSON.parse(r.stdout) as unknown;
  } catch (e) {
    throw new NftError(`list table ${family} ${TABLE}`, `unreadable JSON: ${(e as Error).message}`);
  }
}

/** Apply a script as one transaction: all of it, or (on any error) none of it. */
export async function applyScript(script: string, passFd?: number): Promise<void> {
  if (!script) return;
  const nft = requireNft();
  // The script is whole before nft starts: through a pipe, a slbctl killed while writing it would leave nft a
  // prefix to commit, and a prefix is often valid (a chain flushed but not refilled, a rule cut before its NAT).
  const input = native().sealedInput(script);
  let r;
  try {
    // passFd: nft keeps slbctl's write lock while it commits, even if slbctl is killed meanwhile.
    r = await run([nft, '-f', '-'], passFd === undefined ? { stdinFd: input } : { stdinFd: input, passFd });
  } finally {
    fs.closeSync(input);
  }
  if (r.code !== 0) throw new NftError('transaction rejected, nothing was changed', r.stderr.trim().split('\n').slice(0, 6).join('\n'));
}
