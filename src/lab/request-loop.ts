// A steady client: one HTTP GET at a time to a URL, each on a new
// connection, one JSON line per request on stdout, until SIGTERM.
// Run inside the client's namespace: node request-loop.js URL GAP_MS TIMEOUT_MS
import * as http from 'node:http';

export interface RequestRecord {
  /** Start and end, ms since the epoch. */
  start: number;
  end: number;
  ok: boolean;
  /** X-Real-Server of the answer. */
  rs?: string;
  error?: string;
}

function once(url: string, timeoutMs: number): Promise<RequestRecord> {
  const start = Date.now();
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: Omit<RequestRecord, 'start' | 'end'>) => {
      if (settled) return;
      settled = true;
      req.destroy();
      resolve({ start, end: Date.now(), ...r });
    };
    const req = http.get(url, { agent: false, timeout: timeoutMs, headers: { Connection: 'close' } }, (res) => {
      res.resume();
      res.on('end', () => {
        const rs = res.headers['x-real-server'];
        done({
          ok: res.statusCode === 200,
          ...(typeof rs === 'string' ? { rs } : {}),
          ...(res.statusCode === 200 ? {} : { error: `HTTP ${res.statusCode}` }),
        });
      });
      res.on('error', (e) => done({ ok: false, error: e.message }));
    });
    req.on('timeout', () => done({ ok: false, error: `no answer within ${timeoutMs} ms` }));
    req.on('error', (e: NodeJS.ErrnoException) => done({ ok: false, error: e.code ?? e.message }));
  });
}

async function main(): Promise<void> {
  const [url, gap = '20', timeout = '1000'] = process.argv.slice(2);
  if (!url || !/^http:\/\//.test(url)) {
    process.stderr.write('usage: request-loop URL [GAP_MS] [TIMEOUT_MS]\n');
    process.exit(2);
  }
  let running = true;
  process.on('SIGTERM', () => {
    running = false;
  });
  while (running) {
    const r = await once(url, Number(timeout));
    process.stdout.write(`${JSON.stringify(r)}\n`);
    await new Promise((resolve) => setTimeout(resolve, Number(gap)));
  }
}

if (require.main === module) void main();
