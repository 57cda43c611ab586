// One base class for every error slbctl reports: each kind carries its exit
// code, so the CLI never guesses from a message's text. The codes are the
// README's table.
export const EXIT = {
  ok: 0,
  /** verify found a fact that does not hold (plan --detailed-exitcode uses 2 for "changes"). */
  failed: 1,
  /** the config or the command line is wrong; nothing was changed. */
  config: 2,
  /** slbctl cannot run here: no CAP_NET_ADMIN, nft/iptables missing, backend unavailable. */
  preflight: 3,
  /** the kernel refused a change; nothing was left half-applied. */
  kernel: 4,
  /** a lab operation failed. */
  lab: 5,
  /** another slbctl is changing this network namespace (or a controller manages it). */
  busy: 6,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export abstract class SlbctlError extends Error {
  abstract readonly exitCode: ExitCode;

  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Bad config, bad command line, or a config this host cannot serve: nothing was changed. */
export class ConfigError extends SlbctlError {
  readonly exitCode = EXIT.config;
}

/** slbctl cannot work on this host as it is (privilege, a missing program, a missing kernel feature). */
export class PreflightError extends SlbctlError {
  readonly exitCode = EXIT.preflight;
}

/** The kernel (or a kernel tool such as nft or iptables) refused a change; what was done was undone. */
export class KernelError extends SlbctlError {
  readonly exitCode = EXIT.kernel;
}

export class LabError extends SlbctlError {
  readonly exitCode = EXIT.lab;
}

/** Another writer holds this network namespace, or a running controller manages it. */
export class BusyError extends SlbctlError {
  readonly exitCode = EXIT.busy;
}

/** A verification found a fact that does not hold. */
export class VerificationError extends SlbctlError {
  readonly exitCode = EXIT.failed;
}

export function exitCodeOf(e: unknown): number {
  return e instanceof SlbctlError ? e.exitCode : EXIT.failed;
}
