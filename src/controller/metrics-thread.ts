// The worker thread behind /metrics (see metrics-server.ts): its own event
// loop answers scrapes, renders the controller's snapshots.
import * as http from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';
import { renderMetricsBytes } from './metrics';
import type { FromMetricsThread, MetricsThreadOptions, ToMetricsThread } from './metrics-server';

const port = parentPort;
if (!port) throw new Error('metrics-thread runs as a worker thread only');
const options = workerData as MetricsThreadOptions;
const send = (m: FromMetricsThread): void => port.postMessage(m);

let latest: Buffer | undefined;
/** Scrapes waiting for the next snapshot. */
let waiting: ((body: Buffer) => void)[] = [];

port.on('message', (m: ToMetricsThread) => {
  latest = renderMetricsBytes(m.snapshot);
  const answer = waiting;
  waiting = [];
  for (const a of answer) a(latest);
});

function body(): Promise<Buffer> {
  send({ type: 'want' });
  return new Promise((resolve) => {
    let done = false;
    const once = (b: Buffer): void => {
      if (done) return;
      done = true;
      resolve(b);
    };
    waiting.push(once);
    // Without any snapshot yet (the first scrape) it waits for one, however long.
    setTimeout(() => {
      if (latest) once(latest);
    }, options.answerBudgetMs);
  });
}

const server = http.createServer((req, res) => {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { Allow: 'GET, HEAD' }).end();
    return;
  }
  if (req.url !== '/metrics') {
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('slbctl: metrics are at /metrics\n');
    return;
  }
  void body().then((b) => {
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Content-Length': b.length });
    res.end(req.method === 'HEAD' ? undefined : b);
  });
});
server.once('error', (e: NodeJS.ErrnoException) =>
  send({ type: 'listen-failed', message: e.message, ...(e.code ? { code: e.code } : {}) }),
);
server.listen(options.port, options.host, () => send({ type: 'listening' }));
