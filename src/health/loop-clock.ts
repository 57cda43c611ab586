// How long the event loop could not run anything: a long synchronous task
// (a big plan, a JSON parse of the kernel's ruleset, hundreds of checks
// starting at once) or the process starved of CPU. A probe's answer that
// arrives meanwhile waits in the socket unread, so that time is ours, not
// the server's: a check's timeout counts only the rest (see settle.ts).
//
// Measured by a heartbeat: a short interval timer whose lateness is time the
// loop was blocked. It runs only while some check is waiting, never keeps
// the process alive, and costs one callback every few milliseconds.
import { performance } from 'node:perf_hooks';

const PERIOD_MS = 5;
/** Timer jitter an idle loop shows anyway; lateness up to this is not a block. */
const JITTER_MS = 2;

let holders = 0;
let heartbeat: NodeJS.Timeout | undefined;
let lastBeat = 0;
let blockedTotal = 0;

function lateness(now: number): number {
  return Math.max(0, now - lastBeat - PERIOD_MS - JITTER_MS);
}

function beat(): void {
  const now = performance.now();
  blockedTotal += lateness(now);
  lastBeat = now;
}

/** Milliseconds the loop has been blocked while the heartbeat ran, including a block still going on now. */
function blockedMs(now: number): number {
  return heartbeat ? blockedTotal + lateness(now) : blockedTotal;
}

/** A stopwatch for one probe that leaves out the time the event loop was blocked. */
export interface LoopStopwatch {
  /** Milliseconds since start, wall clock. */
  wall(): number;
  /** Milliseconds since start during which the loop could have read an answer. */
  waited(): number;
  /** Stop the heartbeat this stopwatch holds (idempotent). */
  release(): void;
}

export function loopStopwatch(): LoopStopwatch {
  if (holders++ === 0) {
    lastBeat = performance.now();
    heartbeat = setInterval(beat, PERIOD_MS);
    heartbeat.unref();
  }
  const start = performance.now();
  const blockedAtStart = blockedMs(start);
  let held = true;
  return {
    wall: () => performance.now() - start,
    waited: () => {
      const now = performance.now();
      return now - start - (blockedMs(now) - blockedAtStart);
    },
    release: () => {
      if (!held) return;
      held = false;
      if (--holders === 0 && heartbeat) {
        beat();
        clearInterval(heartbeat);
        heartbeat = undefined;
      }
    },
  };
}
