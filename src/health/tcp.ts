// TCP connect check: the server accepts a connection within the timeout.
import * as net from 'node:net';
import { CheckResult, Checker } from './types';

export class TcpChecker implements Checker {
  readonly kind = 'tcp';
  readonly target: string;

  constructor(private readonly address: string, private readonly port: number) {
    this.target = `tcp ${address}:${port}`;
  }

  check(timeoutMs: number): Promise<CheckResult> {
    const started = Date.now();
    return new Promise((resolve) => {
      const socket = net.connect({ host: this.address, port: this.port });
      const done = (ok: boolean, detail: string) => {
        clearTimeout(timer);
        socket.destroy();
        resolve({ ok, detail, millis: Date.now() - started });
      };
      const timer = setTimeout(() => done(false, `no connection within ${timeoutMs} ms`), timeoutMs);
      socket.once('connect', () => done(true, 'connected'));
      socket.once('error', (e: NodeJS.ErrnoException) => done(false, e.code === 'ECONNREFUSED' ? 'connection refused' : (e.code ?? e.message)));
    });
  }
}
