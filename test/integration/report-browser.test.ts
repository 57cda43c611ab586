// The HTML report in a real browser: headless Chromium (Debian's package)
// loads the report of the recorded modes, its script runs without an error
// and records where each arrow landed; the arrows must sit on their hosts'
// columns, one below the other in packet order, on a desktop window and on
// a phone-sized one, and on the phone in the dark theme too (the page's
// background computes dark there, light otherwise). A screenshot of each is
// taken too.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { renderReport } from '../../src/report/html';
import { findCommand, run } from '../../src/util/exec';
import { RECORDED_MODES, recordedSection } from '../helpers/recorded';

const chromium = findCommand('chromium');

/** Attributes of every `<tag class="cls…" …>`, in document order. */
function elements(html: string, tag: string, cls: string): Record<string, string>[] {
  return [...html.matchAll(new RegExp(`<${tag} class="${cls}[^"]*"([^>]*)>`, 'g'))].map((m) =>
    Object.fromEntries([...(m[1] ?? '').matchAll(/([\w-]+)="([^"]*)"/g)].map((a) => [a[1], a[2]])),
  );
}

const screen = (e: Record<string, string>) => (e['data-screen'] ?? '').split(' ').map(Number);

async function chrome(args: string[], profile: string) {
  // As root Chromium needs --no-sandbox; a profile of its own keeps it off the user's.
  return run([chromium ?? 'chromium', '--headless', '--no-sandbox', '--disable-gpu', `--user-data-dir=${profile}`, ...args], {
    timeoutMs: 60_000,
  });
}

describe(
  'HTML report in headless Chromium',
  { skip: chromium ? false : 'chromium is not installed (scripts/setup.sh installs it)' },
  () => {
    for (const [name, width, height, scheme] of [
      ['desktop', 1280, 900, 'light'],
      ['phone', 390, 844, 'light'],
      ['phone', 390, 844, 'dark'],
    ] as const) {
      it(`${name} (${width}x${height}, ${scheme} theme): loads without errors, arrows where the packets say`, async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-report-'));
        try {
          const file = path.join(dir, 'report.html');
          const sections = RECORDED_MODES.map((m) => recordedSection(m));
          fs.writeFileSync(file, renderReport(sections));
          const url = `file://${file}`;
          const window = `--window-size=${width},${height}`;
          const theme = scheme === 'dark' ? ['--force-dark-mode'] : [];
          const dump = await chrome([window, ...theme, '--virtual-time-budget=3000', '--dump-dom', url], path.join(dir, 'profile'));
          assert.equal(dump.code, 0, dump.stderr);
          const dom = dump.stdout;
          const body = elements(dom, 'body', 'report')[0] ?? {};
          assert.equal(body['data-ready'], 'yes', "the page's script ran to its end");
          // The page follows the theme: a dark background in the dark one, a light one otherwise.
          assert.equal(body['data-scheme'], scheme);
          const rgb = (body['data-background'] ?? '').match(/\d+/g)?.slice(0, 3).map(Number) ?? [];
          assert.equal(rgb.length, 3, `a computed background: ${body['data-background']}`);
          const luminance = (0.2126 * (rgb[0] ?? 0) + 0.7152 * (rgb[1] ?? 0) + 0.0722 * (rgb[2] ?? 0)) / 255;
          assert.ok(scheme === 'dark' ? luminance < 0.2 : luminance > 0.8, `${scheme} theme, background ${body['data-background']}`);
          assert.match(dom, /^<html [^>]*data-errors="0"/m, 'no error and no console error on the page');
          assert.doesNotMatch(dump.stderr, /Uncaught|CONSOLE\(\d+\)].*error/i);

          const hosts = elements(dom, 'g', 'host');
          const arrows = elements(dom, 'g', 'arrow');
          assert.equal(
            arrows.length,
            sections.reduce((n, s) => n + s.ladder.arrows.length, 0),
          );
          let h = 0;
          let k = 0;
          for (const s of sections) {
            const column = new Map<string, number>();
            for (const host of s.ladder.hosts) column.set(host.name, screen(hosts[h++] ?? {})[0] ?? NaN);
            const xs = [...column.values()];
            for (let i = 1; i < xs.length; i++) assert.ok((xs[i] ?? 0) > (xs[i - 1] ?? 0), 'columns left to right');
            const gap = (xs[1] ?? 0) - (xs[0] ?? 0);
            let lastY = -Infinity;
            for (const a of s.ladder.arrows) {
              const [x1 = NaN, y1 = NaN, x2 = NaN, y2 = NaN] = screen(arrows[k++] ?? {});
              const where = `${s.verdict.mode} #${a.index + 1} ${a.what} ${a.from}>${a.to}`;
              assert.ok(Math.abs(x1 - (column.get(a.from) ?? NaN)) < 1, `${where}: starts on ${a.from}'s column`);
              // The line stops just short of its head's tip, on the receiver's column.
              assert.ok(Math.abs(x2 - (column.get(a.to) ?? NaN)) < gap / 10, `${where}: ends on ${a.to}'s column`);
              assert.equal(
                Math.sign(x2 - x1),
                Math.sign((column.get(a.to) ?? 0) - (column.get(a.from) ?? 0)),
                `${where}: points at ${a.to}`,
              );
              assert.ok(Math.abs(y1 - y2) < 0.5, `${where}: horizontal`);
              assert.ok(y1 > lastY, `${where}: below the packet before it`);
              lastY = y1;
            }
          }
          assert.equal(h, hosts.length);

          const png = path.join(dir, `${name}-${scheme}.png`);
          const shot = await chrome(
            [window, ...theme, '--virtual-time-budget=3000', '--hide-scrollbars', `--screenshot=${png}`, url],
            path.join(dir, 'profile'),
          );
          assert.equal(shot.code, 0, shot.stderr);
          const image = fs.readFileSync(png);
          assert.equal(image.subarray(1, 4).toString(), 'PNG');
          assert.equal(image.readUInt32BE(16), width, 'screenshot as wide as the window');
        } finally {
          fs.rmSync(dir, { recursive: true, force: true });
        }
      });
    }
  },
);
