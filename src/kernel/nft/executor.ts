// Two ways to run an nftables script, behind one interface: in this process
// through libnftables (the addon's nftRun, the default), or as an `nft`
// child process (SLBCTL_NFT_EXEC=process, a diagnostic switch, also used when
// the addon was built without libnftables). Both send the script as one
// batch: the kernel commits all of it or none of it.
import * as fs from 'node:fs';
import { findCommand, run } from '../../util/exec';
import { native } from '../../util/netns';
import { PreflightError } from '../../util/errors';

/** What nft answered: its standard output (JSON for listings) and its error text. */
export interface NftResult {
  ok: boolean;
  output: string;
  error: string;
}

export interface NftExecutor {
  readonly name: 'libnftables' | 'process';
  /**
   * One transaction. passFd is slbctl's write lock: the process executor hands it to nft so the lock is held
   * until nft's commit ends even if slbctl dies; in process, slbctl itself holds it until the commit returns.
   */
  transaction(script: string, passFd?: number): Promise<NftResult>;
  /** A listing such as `list table ip slbctl`, in JSON. */
  listJson(command: readonly string[]): Promise<NftResult>;
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

const processExecutor: NftExecutor = {
  name: 'process',
  async transaction(script, passFd) {
    const nft = requireNft();
    // The script is whole before nft starts: through a pipe, a slbctl killed while writing it would leave nft a
    // prefix to commit, and a prefix is often valid (a chain flushed but not refilled, a rule cut before its NAT).
    const input = native().sealedInput(script);
    try {
      const r = await run([nft, '-f', '-'], passFd === undefined ? { stdinFd: input } : { stdinFd: input, passFd });
      return { ok: r.code === 0, output: r.stdout, error: r.stderr };
    } finally {
      fs.closeSync(input);
    }
  },
  async listJson(command) {
    const r = await run([requireNft(), '-j', ...command]);
    return { ok: r.code === 0, output: r.stdout, error: r.stderr };
  },
};

type NftRun = (script: string, json: boolean, dryRun: boolean) => Promise<NftResult>;

function nftRun(): NftRun | undefined {
  try {
    const n = native();
    return typeof n.nftRun === 'function' ? n.nftRun.bind(n) : undefined;
  } catch {
    return undefined;
  }
}

// nftRun takes the calling thread's network namespace when called: call it synchronously, never after an await
// that may have let inNetns code run.
const libnftablesExecutor: NftExecutor = {
  name: 'libnftables',
  transaction: (script) => (nftRun() as NftRun)(script, false, false),
  listJson: (command) => (nftRun() as NftRun)(command.join(' '), true, false),
};

/** The executor in use: libnftables in process unless SLBCTL_NFT_EXEC=process or the addon lacks it. Read at each call. */
export function nftExecutor(): NftExecutor {
  if (process.env.SLBCTL_NFT_EXEC === 'process') return processExecutor;
  return nftRun() ? libnftablesExecutor : processExecutor;
}
