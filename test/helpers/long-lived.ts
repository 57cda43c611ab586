// A client connection held open across control-plane changes: it sends the
// first half of an HTTP request, waits, and sends the rest when told to.
import { spawn } from 'node:child_process';

const SCRIPT = [
  "const net = require('net');",
  "const s = net.connect(Number(process.argv[2]), process.argv[1], () => { s.write('GET / HTTP/1.1\\r\\nHost: vip\\r\\n'); process.stdout.write('connected\\n'); });",
  "let buf = ''; s.on('data', (d) => { buf += d; }); s.on('close', () => { process.stdout.write(buf); process.exit(0); });",
  "s.on('error', (e) => { process.stdout.write('error ' + e.message); process.exit(1); });",
  "process.stdin.on('data', () => s.write('\\r\\n'));",
].join('\n');

export interface LongLived {
  /** Resolves once the TCP connection is established (false after ~15 s without: generous for loaded machines, no timing claim). */
  connected(): Promise<boolean>;
  /** Send the rest of the request; resolves with the exit code and everything received. */
  finish(timeoutMs?: number): Promise<{ code: number; output: string }>;
  kill(): void;
}

export function openLongLived(netns: string, address: string, port: number): LongLived {
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, '-e', SCRIPT, address, String(port)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  return {
    async connected() {
      for (let i = 0; i < 300 && !output.includes('connected'); i++) await new Promise((r) => setTimeout(r, 50));
      return output.includes('connected');
    },
    async finish(timeoutMs = 30_000) {
      child.stdin.write('go\n');
      const code = await Promise.race([exited, new Promise<number>((r) => setTimeout(() => r(-2), timeoutMs))]);
      return { code, output };
    },
    kill() {
      child.kill();
    },
  };
}
