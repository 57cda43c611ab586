// Run as `node nft-big.js TABLE` inside a network namespace: applies, in
// process, one transaction that makes TABLE with a set of 20,000 elements
// added one command each, and prints "sending" just before (a test kills
// this process while the transaction is on its way).
import { applyScript } from '../../src/kernel/nft/client';

const table = process.argv[2] ?? '';
const lines = [`add table ip ${table}`, `add set ip ${table} many { type ipv4_addr; }`];
for (let i = 0; i < 20000; i++) lines.push(`add element ip ${table} many { 198.19.${Math.floor(i / 250)}.${(i % 250) + 1} }`);
const script = `${lines.join('\n')}\n`;
process.stdout.write('sending\n');
applyScript(script).catch((e: unknown) => {
  process.stderr.write(`nft-big: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
