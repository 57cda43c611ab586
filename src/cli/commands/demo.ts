import * as path from 'node:path';
import type { CommandModule } from 'yargs';
import { Mode } from '../../model/types';
import { labDown, labUp } from '../../lab/netns';
import { DEFAULT_LAB_OPTIONS, LabModeOptions, labModeTitle } from '../../lab/lb-config';
import { REFERENCE_TOPOLOGY } from '../../lab/topology';
import { renderVerdict } from '../../verify/render';
import { renderTable } from '../../util/table';
import { EXIT } from '../errors';
import { requireRoot, withLabName, withRequests } from '../lab-options';
import { applyLabMode } from '../../lab/mode';
import { verifyLabMode } from '../../verify/run';
import { ReportSection, writeReport } from '../../report/html';

interface Args {
  name: string;
  requests: number;
  out: string;
  report?: string;
  keep: boolean;
}

export const demoCommand: CommandModule<object, Args> = {
  command: 'demo',
  describe:
    'Bring the lab up, apply and verify by packet capture the three L4 modes and the two L7 service types (reverse proxy with a cache, transparent), print a summary, tear the lab down',
  builder: (y) =>
    withRequests(withLabName(y), 'HTTP requests per mode')
      .option('out', { alias: 'o', type: 'string', default: 'slbctl-pcaps/demo', describe: 'directory for the pcap files' })
      .option('report', { type: 'string', describe: 'HTML report of every mode, each with its packet ladder (default OUT/report.html)' })
      .option('keep', { type: 'boolean', default: false, describe: 'leave the lab up at the end' }),
  handler: async (args) => {
    requireRoot('demo');
    const say = (line: string) => process.stdout.write(`${line}\n`);
    const started = Date.now();
    const summary: { mode: Mode; what: string; pass: boolean; facts: string; pcaps: string }[] = [];
    const sections: ReportSection[] = [];
    // The three L4 modes in the kernel, then the two L7 service types in HAProxy (the reference's modes 1 and 2).
    const rows: { mode: Mode; dir: string; options: LabModeOptions }[] = [
      { mode: 'fullnat', dir: 'fullnat', options: DEFAULT_LAB_OPTIONS },
      { mode: 'transparent', dir: 'transparent', options: DEFAULT_LAB_OPTIONS },
      { mode: 'dsr', dir: 'dsr', options: DEFAULT_LAB_OPTIONS },
      { mode: 'fullnat', dir: 'l7-reverse-proxy', options: { ...DEFAULT_LAB_OPTIONS, protocol: 'http', cache: true } },
      { mode: 'transparent', dir: 'l7-transparent', options: { ...DEFAULT_LAB_OPTIONS, protocol: 'http' } },
    ];
    await labDown(args.name); // a lab left by an interrupted demo
    try {
      say(`== lab up "${args.name}" (client ${REFERENCE_TOPOLOGY.hosts[0]?.interfaces[0]?.cidr}, VIP ${REFERENCE_TOPOLOGY.vip})`);
      await labUp(args.name, REFERENCE_TOPOLOGY, (l) => say(`  ${l}`));
      for (const { mode, dir, options } of rows) {
        const what = labModeTitle(mode, options);
        say(`\n== mode ${mode}: ${what}`);
        await applyLabMode(args.name, mode, say, options);
        const out = path.resolve(args.out, dir);
        const report = await verifyLabMode(args.name, mode, args.requests, out);
        say(renderVerdict(report.verdict));
        sections.push(report);
        const passed = report.verdict.facts.filter((f) => f.pass).length;
        summary.push({ mode, what, pass: report.verdict.pass, facts: `${passed}/${report.verdict.facts.length}`, pcaps: out });
      }
    } finally {
      if (!args.keep) {
        await labDown(args.name);
        say(`\n== lab "${args.name}" torn down`);
      }
    }
    say(`\n== summary (${((Date.now() - started) / 1000).toFixed(0)} s)`);
    say(
      renderTable(
        ['MODE', 'WHAT', 'FACTS', 'VERDICT', 'PCAPS'],
        summary.map((s) => [s.mode, s.what, s.facts, s.pass ? 'PASS' : 'FAIL', s.pcaps]),
      ),
    );
    if (sections.length) say(`report: ${writeReport(args.report ?? path.join(args.out, 'report.html'), sections)}`);
    say('open the pcaps with wireshark or `tshark -r FILE`, the report in a browser');
    if (summary.some((s) => !s.pass)) process.exitCode = EXIT.failed;
  },
};
