/** What the host asks the user-mode-linux guest to run. */
export interface UmlJob {
  argv: string[];
  cwd: string;
  /** Kernel modules to load first (ip_vs, its schedulers, ipip, veth …). */
  modules: string[];
  env: Record<string, string>;
  timeoutMs: number;
  /** Stay up and run the commands that appear in <work>/jobs/ until told to power off. */
  agent?: boolean;
}

/** One command for a running guest agent: <work>/jobs/<seq>.json; answers <seq>.out and then <seq>.code. */
export interface AgentCommand {
  argv: string[];
  cwd: string;
  /** Host folders the guest must see for this command (its cwd, an output folder …), hostfs-mounted if its own mounts hide them. */
  show?: string[];
  /** Power the guest off instead of running a command. */
  poweroff?: boolean;
}
