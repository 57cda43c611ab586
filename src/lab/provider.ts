// One interface for every lab provider (network namespaces on this kernel,
// a user-mode-linux kernel with IPVS, Vagrant VMs): the CLI's lab commands
// know only this. A new provider is one file implementing it plus its line
// in providers.ts.
import { Mode } from '../model/types';
import type { LabModeOptions } from './lb-config';
import { RunResult } from '../util/exec';
import { BalancerName, LabHostName } from './topology';
import { VerifyExpectation, VerifyReport } from '../verify/flow';

export type Say = (line: string) => void;

/** A running lab of one provider. */
export interface Lab {
  readonly name: string;
  readonly provider: string;
  /** Put the real servers into a mode and apply the balancer's config with slbctl on the balancer. */
  mode(mode: Mode, options: LabModeOptions, say: Say): Promise<void>;
  /** Capture on every host, make K requests from the client, judge the mode's facts; pcaps under `out`. */
  verify(mode: Mode | undefined, requests: number, out: string | undefined, expect?: VerifyExpectation): Promise<VerifyReport>;
  /** A command on one lab host; its exit code comes back. */
  exec(host: LabHostName, argv: string[]): Promise<RunResult>;
  /** Two balancers: take one off the wire and kill its controller (absent: this provider has one balancer). */
  fail?(balancer: BalancerName, say: Say): Promise<void>;
  /** Bring a failed balancer back and wait until the router uses it again. */
  recover?(balancer: BalancerName, say: Say): Promise<void>;
  /** Remove everything the lab made. */
  down(say: Say): Promise<void>;
}

export interface LabProvider {
  readonly name: string;
  /** One line for `lab up --help`. */
  readonly describe: string;
  /**
   * This provider's running lab of that name (from its record), or undefined.
   * `leftovers`: also a lab whose record was lost but whose pieces are still
   * there (lab down removes it), a slower look.
   */
  find(name: string, o?: { leftovers?: boolean }): Promise<Lab | undefined>;
  /** Build the lab; `say` tells how it goes; the returned text ends the output. */
  up(name: string, options: { box?: string; balancers?: number }, say: Say): Promise<string>;
}
