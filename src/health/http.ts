// HTTP(S) GET check: the answer's status is in the expected range and, if
// asked, its body contains a string.
import * as http from 'node:http';
import * as https from 'node:https';
import { CheckResult, Checker } from './types';
import { settleOnce } from './settle';

export interface HttpExpectation {
  /** Inclusive status range, default 200-399. */
  status: [number, number];
  /** A string the body must contain. */
  body?: string;
}

export class HttpChecker implements Checker {
  readonly kind: string;
  readonly target: string;
  private readonly url: URL;

  constructor(
    url: string,
    private readonly expect: HttpExpectation = { status: [200, 399] },
  ) {
    this.url = new URL(url);
    if (this.url.protocol !== 'http:' && this.url.protocol !== 'https:')
      throw new Error(`health check URL ${url} is not http:// or https://`);
    this.kind = this.url.protocol === 'https:' ? 'https' : 'http';
    this.target = `${this.kind} GET ${url}`;
  }

  check(timeoutMs: number): Promise<CheckResult> {
    const client = this.url.protocol === 'https:' ? https : http;
    return settleOnce(
      timeoutMs,
      `no answer within ${timeoutMs} ms`,
      (done) => {
        // Health checks talk to the real server itself, never through a proxy; self-signed certificates are the norm there.
        const req = client.get(
          this.url,
          { agent: false, rejectUnauthorized: false, headers: { 'User-Agent': 'slbctl-health', Connection: 'close' } },
          (res) => {
            const status = res.statusCode ?? 0;
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => {
              if (body.length < 65536) body += chunk;
            });
            res.on('end', () => {
              const [lo, hi] = this.expect.status;
              if (status < lo || status > hi) {
                done(false, `HTTP ${status}, expected ${lo}-${hi}`);
                return;
              }
              if (this.expect.body !== undefined && !body.includes(this.expect.body)) {
                done(false, `HTTP ${status} but the body lacks ${JSON.stringify(this.expect.body)}`);
                return;
              }
              done(true, `HTTP ${status}`);
            });
            res.on('error', (e) => done(false, e.message));
          },
        );
        req.on('error', (e: NodeJS.ErrnoException) =>
          done(false, e.code === 'ECONNREFUSED' ? 'connection refused' : (e.code ?? e.message)),
        );
        return () => req.destroy();
      },
      'cannot send the request',
    );
  }
}
