// /metrics served by a worker thread, so a scrape does not wait its turn on
// the controller's event loop (issue 12: at 1,000 RS and 4,000 checks a
// second that loop's p99 delay was ~180 ms, and every answer came after it).
//
// The worker owns the listener and renders the text; the controller only
// takes a snapshot of its state when asked, and posts it. A scrape asks for
// a fresh snapshot and waits for it at most ANSWER_BUDGET_MS; a loop busier
// than that gets the latest snapshot instead, which the controller also
// posts every PUBLISH_MS while someone scrapes, so it is at most about that
// old. Counters in it are the controller's at that time: still monotonic.
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { MetricsSnapshot } from './metrics';

/** Given to the worker at start. */
export interface MetricsThreadOptions {
  host: string;
  port: number;
  answerBudgetMs: number;
}

/** From the controller to the worker. */
export type ToMetricsThread = { type: 'snapshot'; snapshot: MetricsSnapshot };

/** From the worker to the controller. */
export type FromMetricsThread =
  | { type: 'listening' }
  | { type: 'listen-failed'; code?: string; message: string }
  /** A scrape came: post a fresh snapshot. */
  | { type: 'want' };

const ANSWER_BUDGET_MS = 25;
const PUBLISH_MS = 1000;
/** Periodic snapshots stop when nobody scraped for this long. */
const SCRAPED_RECENTLY_MS = 60_000;

export interface MetricsServer {
  close(): Promise<void>;
}

/**
 * Starts the worker and resolves once it listens; rejects with the listen
 * error's code (EADDRINUSE …) and message. `snapshot(scrape)`: the
 * controller's state; `scrape` is false for the periodic ones.
 */
export function serveMetrics(
  listen: { host: string; port: number },
  snapshot: (scrape: boolean) => Promise<MetricsSnapshot>,
): Promise<MetricsServer> {
  const options: MetricsThreadOptions = { ...listen, answerBudgetMs: ANSWER_BUDGET_MS };
  const worker = new Worker(path.join(__dirname, 'metrics-thread.js'), { workerData: options });
  let scrapedAt = -Infinity;
  let taking: Promise<void> | undefined;
  const post = (scrape: boolean): void => {
    // Concurrent scrapes share one snapshot.
    taking ??= snapshot(scrape)
      .then((s) => worker.postMessage({ type: 'snapshot', snapshot: s } satisfies ToMetricsThread))
      .catch(() => undefined)
      .finally(() => (taking = undefined));
  };
  const timer = setInterval(() => {
    if (Date.now() - scrapedAt < SCRAPED_RECENTLY_MS) post(false);
  }, PUBLISH_MS);
  timer.unref();
  const close = async (): Promise<void> => {
    clearInterval(timer);
    await worker.terminate();
  };
  return new Promise((resolve, reject) => {
    worker.on('error', (e) => {
      clearInterval(timer);
      reject(e);
    });
    worker.on('message', (m: FromMetricsThread) => {
      switch (m.type) {
        case 'listening':
          resolve({ close });
          return;
        case 'listen-failed':
          void close();
          reject(Object.assign(new Error(m.message), { code: m.code }));
          return;
        case 'want':
          scrapedAt = Date.now();
          post(true);
          return;
      }
    });
  });
}
