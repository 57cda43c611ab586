// TCP connect check: the server accepts a connection within the timeout.
import * as net from 'node:net';
import { CheckResult, Checker } from './types';
import { settleOnce } from './settle';

export class TcpChecker implements Checker {
  readonly kind = 'tcp';
  readonly target: string;

  constructor(
    private readonly address: string,
    private readonly port: number,
  ) {
    this.target = `tcp ${address}:${port}`;
  }

  check(timeoutMs: number): Promise<CheckResult> {
    return settleOnce(
      timeoutMs,
      `no connection within ${timeoutMs} ms`,
      (done) => {
        const socket = net.connect({ host: this.address, port: this.port });
        socket.once('connect', () => done(true, 'connected'));
        socket.once('error', (e: NodeJS.ErrnoException) =>
          done(false, e.code === 'ECONNREFUSED' ? 'connection refused' : (e.code ?? e.message)),
        );
        return () => socket.destroy();
      },
      'cannot connect',
    );
  }
}
