// The nftables `mh` scheduler in the netns lab: the service's backends map
// holds the Maglev table (MAGLEV_SIZE slots), flows spread over both real
// servers by their hash, and a second plan finds nothing to change (the
// table read back is the table computed).
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { labDown, labUp, nsName } from '../../src/lab/netns';
import { applyLabMode } from '../../src/lab/mode';
import { DEFAULT_LAB_OPTIONS, labServiceConfig } from '../../src/lab/lb-config';
import { REFERENCE_TOPOLOGY } from '../../src/lab/topology';
import { MAGLEV_SIZE } from '../../src/kernel/nft/maglev';
import { CLI_ENTRY } from '../../src/util/self';
import { run } from '../../src/util/exec';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const lab = `tmh${(process.pid % 1000).toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
const lbCli = (args: string[]) => run([process.execPath, CLI_ENTRY, ...args], { netns: nsName(lab, 'lb') });

describe('mh (Maglev) on nftables in the netns lab', { skip: isRoot ? false : 'needs root: network namespaces' }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-mh-'));
  const file = path.join(dir, 'mh.yaml');

  before(async () => {
    await labUp(lab, REFERENCE_TOPOLOGY);
    await applyLabMode(lab, 'fullnat', () => undefined, { ...DEFAULT_LAB_OPTIONS, backend: 'nft' });
    const config = labServiceConfig('fullnat', REFERENCE_TOPOLOGY, { ...DEFAULT_LAB_OPTIONS, backend: 'nft' });
    assert.match(config, /scheduler: rr/);
    fs.writeFileSync(file, config.replace('scheduler: rr', 'scheduler: mh'));
  });
  after(async () => {
    await lbCli(['destroy']);
    await labDown(lab);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the backends map holds the Maglev table, both servers answer, a second plan has nothing to do', async () => {
    const applied = await lbCli(['apply', '-f', file]);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    const listed = await run(['nft', 'list', 'map', 'ip', 'slbctl', 'backends_tcp'], { netns: nsName(lab, 'lb') });
    const slots = listed.stdout.match(/172\.16\.75\.84 \. 80 \. \d+ :/g) ?? [];
    assert.equal(slots.length, MAGLEV_SIZE);
    const chain = await run(['nft', 'list', 'table', 'ip', 'slbctl'], { netns: nsName(lab, 'lb') });
    assert.match(chain.stdout, new RegExp(`jhash ip saddr \\. tcp sport mod ${MAGLEV_SIZE} seed 0x`));

    const seen = new Map<string, number>();
    for (let i = 0; i < 16; i++) {
      const r = await run(['curl', '-sS', '-m', '5', `http://${REFERENCE_TOPOLOGY.vip}/`], { netns: nsName(lab, 'client') });
      assert.equal(r.code, 0, r.stderr);
      const rs = /^(rs[12]) /.exec(r.stdout)?.[1] ?? '?';
      seen.set(rs, (seen.get(rs) ?? 0) + 1);
    }
    assert.deepEqual([...seen.keys()].sort(), ['rs1', 'rs2'], `16 connections (new source ports) over both: ${[...seen].join(', ')}`);

    const again = await lbCli(['plan', '-f', file]);
    assert.match(again.stdout, /no changes/, again.stdout);
  });
});
