// Run as `node lock-holder.js write|controller` inside a network namespace:
// takes that lock of the namespace exactly as slbctl does (src/records/lock.ts,
// so its pid and command line are what a refused writer names), prints
// "held PID" and keeps it until killed. Prints "busy" and exits 1 when
// someone else holds it.
import { Lock, LockKind } from '../../src/records/lock';

const kind = process.argv[2] as LockKind;
if (kind !== 'write' && kind !== 'controller') {
  process.stderr.write('usage: lock-holder.js write|controller\n');
  process.exit(2);
}
const lock = Lock.tryAcquire(kind);
if (!lock) {
  process.stdout.write('busy\n');
  process.exit(1);
}
process.stdout.write(`held ${process.pid}\n`);
// Keep the process (and so the lock) alive until it is killed.
setInterval(() => undefined, 1 << 30);
