// When a server's next check starts. Pure, so the rule is tested by itself.
//
// Checks keep to a grid of intervals: the next is due one interval after the
// previous was *due*, not after it started. Counting from the actual start
// (as a plain setTimeout chain does) adds every timer's lateness to every
// later period, so a loaded controller checked less often than configured
// (issue 12: 400 servers at 100 ms ran about 800 of 4,000 checks a second,
// each server about every 500 ms). A check that overran its slot (a slow server, a blocked loop) is
// followed at once, never by a burst of the checks it missed.

/** `previousDue` and `now` on one monotonic clock (performance.now()), in milliseconds. */
export function nextDue(previousDue: number, intervalMs: number, now: number): number {
  const due = previousDue + intervalMs;
  return due >= now ? due : now;
}
