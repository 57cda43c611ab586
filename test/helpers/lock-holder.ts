// Run as `node lock-holder.js write|controller [--child]` inside a network
// namespace: takes that lock of the namespace exactly as slbctl does
// (src/records/lock.ts, so its pid and command line are what a refused writer
// names), prints "held PID" and keeps it until killed. With --child it also
// starts a child that inherits the lock, as slbctl's nft does, and prints its
// pid ("held PID child PID"). Prints "busy" and exits 1 when someone else
// holds the lock.
import { spawn } from 'node:child_process';
import { Lock, LockKind } from '../../src/records/lock';

const arg = process.argv[2];
if (arg !== 'write' && arg !== 'controller') {
  process.stderr.write('usage: lock-holder.js write|controller [--child]\n');
  process.exit(2);
}
const kind: LockKind = arg;
const lock = Lock.tryAcquire(kind);
if (!lock) {
  process.stdout.write('busy\n');
  process.exit(1);
}
if (process.argv[3] === '--child') {
  const child = spawn('sleep', ['3600'], { stdio: ['ignore', 'ignore', 'ignore', lock.descriptor], detached: true });
  process.stdout.write(`held ${process.pid} child ${child.pid}\n`);
} else {
  process.stdout.write(`held ${process.pid}\n`);
}
// Keep the process (and so the lock) alive until it is killed.
setInterval(() => undefined, 1 << 30);
