/** What the host asks the user-mode-linux guest to run. */
export interface UmlJob {
  argv: string[];
  cwd: string;
  /** Kernel modules to load first (ip_vs, its schedulers, ipip, veth …). */
  modules: string[];
  env: Record<string, string>;
  timeoutMs: number;
}
