// slbctl's two calls into nftables: a script applied as one transaction, and
// a table listed as JSON. Both go through the executor in use (executor.ts):
// libnftables in this process, or an `nft` child.
import { KernelError } from '../../util/errors';
import { Family } from '../../model/state';
import { TABLE } from './names';
import { nftExecutor } from './executor';
import { NftCommand, commandText, scriptText } from './commands';
import { encodeBatch, sendBatch } from './batch';
import * as os from 'node:os';

export { NftMissingError, requireNft } from './executor';

/** nft refused a transaction or a listing failed (exit 4). */
export class NftError extends KernelError {
  constructor(what: string, detail: string) {
    super(`nftables: ${what}: ${detail}`);
  }
}

let listings = 0;
/** Tables listed since the process started (tests see that a plan started from the record listed nothing). */
export const listingCount = (): number => listings;

/** The JSON listing of slbctl's table of this family, or undefined when it does not exist. */
export async function listTable(family: Family): Promise<unknown> {
  listings++;
  const r = await nftExecutor().listJson(['list', 'table', family, TABLE]);
  if (!r.ok) {
    if (/No such file or directory/.test(r.error)) return undefined;
    throw new NftError(`list table ${family} ${TABLE}`, r.error.trim());
  }
  try {
    return JSON.parse(r.output) as unknown;
  } catch (e) {
    throw new NftError(`list table ${family} ${TABLE}`, `unreadable JSON: ${(e as Error).message}`);
  }
}

/** Apply a script as one transaction: all of it, or (on any error) none of it. */
export async function applyScript(script: string, passFd?: number): Promise<void> {
  if (!script) return;
  const r = await nftExecutor().transaction(script, passFd);
  if (!r.ok) throw new NftError('transaction rejected, nothing was changed', r.error.trim().split('\n').slice(0, 6).join('\n'));
}

const errnoNames = new Map(Object.entries(os.constants.errno).map(([name, n]) => [n, name]));

/**
 * Apply commands as one transaction: as an nfnetlink batch of slbctl's own
 * (batch.ts) when every command is one it encodes and the executor is in
 * process, else as a script through the executor. `generation`: the ruleset
 * generation they were planned at; a batch refused because it moved goes the
 * script's way, as every transaction did before. Says which way it went.
 */
export async function applyCommands(
  commands: readonly NftCommand[],
  generation?: number,
  passFd?: number,
): Promise<'nfnetlink' | 'script'> {
  if (commands.length === 0) return 'script';
  const direct = process.env.SLBCTL_NFT_DIRECT !== '0' && nftExecutor().name === 'libnftables';
  const batch = direct ? encodeBatch(commands, generation) : undefined;
  if (batch) {
    const r = sendBatch(batch);
    if (r.ok) return 'nfnetlink';
    if (!r.restart) {
      const command = commands[r.command];
      const name = errnoNames.get(r.errno) ?? `errno ${r.errno}`;
      throw new NftError('transaction rejected, nothing was changed', `${command ? commandText(command) : 'a command'}: ${name}`);
    }
  }
  await applyScript(scriptText(commands), passFd);
  return 'script';
}
