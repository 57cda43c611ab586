// Turns any error into one sentence and a documented exit code.
import { CommandError } from '../util/exec';
import { NftError } from '../kernel/nft/client';
import { RtnlError } from '../kernel/rtnl/rtnl';
import { PreflightError } from '../engine/engine';
import { ResolveError } from '../engine/resolve';
import { LabError } from '../lab/errors';
import { ConfigFileError } from '../model/load';
import { DrainError } from '../controller/drain';

export const EXIT = {
  ok: 0,
  /** verify found a fact that does not hold, or plan --detailed-exitcode found changes (2 there). */
  failed: 1,
  /** the config (or the command line) is wrong. */
  config: 2,
  /** not root, nft missing, backend unavailable. */
  preflight: 3,
  /** the kernel refused a change; nothing was left half-applied. */
  kernel: 4,
  /** a lab operation failed. */
  lab: 5,
} as const;

export class UsageError extends Error {
  constructor(message: string, readonly exitCode: number = EXIT.config) {
    super(message);
    this.name = 'UsageError';
  }
}

export function exitCodeFor(e: unknown): number {
  if (e instanceof UsageError) return e.exitCode;
  if (e instanceof ResolveError || e instanceof ConfigFileError || e instanceof DrainError) return EXIT.config;
  if (e instanceof PreflightError) return EXIT.preflight;
  if (e instanceof NftError && /binary not found/.test(e.message)) return EXIT.preflight;
  if (e instanceof NftError || e instanceof RtnlError) return EXIT.kernel;
  if (e instanceof CommandError || e instanceof LabError) return EXIT.lab;
  return EXIT.failed;
}

export function report(e: unknown): number {
  const message = e instanceof Error ? e.message : String(e);
  process.stderr.write(`slbctl: ${message}\n`);
  if (process.env.SLBCTL_DEBUG && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  return exitCodeFor(e);
}
