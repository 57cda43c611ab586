// Every exit code of the README's table, on one backend: each case is a real
// situation (a bad file, no privilege, a missing program, a kernel refusal,
// another writer, a lab that is not up) and the code must come from the
// error's class, with one sentence on stderr and nothing changed.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RunResult } from '../../src/util/exec';

export interface ExitCodeEnv {
  backend: 'nft' | 'ipvs';
  /** slbctl where the test's balancer is; `path` replaces PATH, `nobody` runs it as uid 65534 with no capability. */
  slbctl(args: string[], o?: { path?: string; nobody?: boolean }): Promise<RunResult>;
  /** argv prefix that runs a program where the balancer is (e.g. ip netns exec NS), empty when it is here. */
  prefix: string[];
  /** Everything a refused command must leave as it was. */
  snapshot(): Promise<string>;
  /** A directory for config files, readable by uid 65534. */
  dir: string;
  /** A valid config of this backend that programs something. */
  goodConfig: string;
  /** Make the kernel refuse `config` (returned) after slbctl has started changing things; `undo` puts things back. */
  kernelRefusal(): Promise<{ config: string; refusal: RegExp; undo: () => Promise<void> }>;
  /** PATH without the program this backend needs (nft, or iptables for fullnat on IPVS), and the config that needs it. */
  missingProgram: { path: string; config: string; message: RegExp };
}

function write(dir: string, name: string, body: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, body, { mode: 0o644 });
  return file;
}

export function exitCodeSuite(name: string, env: () => ExitCodeEnv): void {
  describe(`exit codes on ${name}`, () => {
    it('0: a valid config is applied, and re-applied with no changes', async () => {
      const e = env();
      const file = write(e.dir, 'good.yaml', e.goodConfig);
      const first = await e.slbctl(['apply', '-q', '-f', file]);
      assert.equal(first.code, 0, first.stdout + first.stderr);
      const again = await e.slbctl(['apply', '-f', file]);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /no changes/);
      assert.equal((await e.slbctl(['destroy'])).code, 0);
    });

    it('2: a bad config, and a bad option, change nothing', async () => {
      const e = env();
      const before = await e.snapshot();
      const bad = write(e.dir, 'bad.yaml', e.goodConfig.replace(/mode: \w+/, 'mode: nat64'));
      const r = await e.slbctl(['apply', '-f', bad]);
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(r.stderr, /mode/);
      const opt = await e.slbctl(['apply', '-f', write(e.dir, 'good.yaml', e.goodConfig), '--no-such-option']);
      assert.equal(opt.code, 2, opt.stdout + opt.stderr);
      assert.equal(await e.snapshot(), before);
    });

    it('3: without CAP_NET_ADMIN, and without a program the backend needs, nothing changes', async () => {
      const e = env();
      const before = await e.snapshot();
      const good = write(e.dir, 'good.yaml', e.goodConfig);
      const r = await e.slbctl(['apply', '-f', good], { nobody: true });
      assert.equal(r.code, 3, r.stdout + r.stderr);
      assert.match(r.stderr, /needs CAP_NET_ADMIN/);
      const missing = await e.slbctl(['apply', '-f', write(e.dir, 'missing.yaml', e.missingProgram.config)], {
        path: e.missingProgram.path,
      });
      assert.equal(missing.code, 3, missing.stdout + missing.stderr);
      assert.match(missing.stderr, e.missingProgram.message);
      assert.equal(await e.snapshot(), before);
    });

    it('4: the kernel refuses a change: what was done is undone', async () => {
      const e = env();
      const k = await e.kernelRefusal();
      try {
        const before = await e.snapshot();
        const r = await e.slbctl(['apply', '-f', write(e.dir, 'refused.yaml', k.config)]);
        assert.equal(r.code, 4, r.stdout + r.stderr);
        assert.match(r.stderr, k.refusal);
        assert.equal(await e.snapshot(), before);
      } finally {
        await k.undo();
      }
    });

    it('5: a lab command on a lab that is not up', async () => {
      const e = env();
      const r = await e.slbctl(['lab', 'mode', 'fullnat', '--name', 'nolab9']);
      assert.equal(r.code, 5, r.stdout + r.stderr);
      assert.match(r.stderr, /lab "nolab9" is not up/);
    });

    it('6: another writer holds the namespace: refused after --wait, naming it', async () => {
      const e = env();
      const lockModule = path.join(__dirname, '..', '..', 'src', 'records', 'lock.js');
      const holder = spawn(
        e.prefix[0] ?? process.execPath,
        [
          ...e.prefix.slice(1),
          ...(e.prefix.length ? [process.execPath] : []),
          '-e',
          `require(${JSON.stringify(lockModule)}).Lock.tryAcquire('write'); process.stdout.write('held\\n'); setTimeout(() => {}, 60000);`,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      try {
        await new Promise<void>((resolve, reject) => {
          holder.stdout?.on('data', (b: Buffer) => {
            if (b.toString().includes('held')) resolve();
          });
          holder.on('exit', (c) => reject(new Error(`the lock holder exited ${c}`)));
        });
        const before = await e.snapshot();
        const r = await e.slbctl(['apply', '--wait', '300ms', '-f', write(e.dir, 'good.yaml', e.goodConfig)]);
        assert.equal(r.code, 6, r.stdout + r.stderr);
        assert.match(r.stderr, new RegExp(`another slbctl is changing this network namespace: pid ${holder.pid ?? 0}`));
        assert.equal(await e.snapshot(), before);
      } finally {
        holder.kill('SIGKILL');
      }
    });
  });
}
