import type { CommandModule } from 'yargs';
import { MODES, Mode } from '../../model/types';
import { renderVerdict } from '../../verify/render';
import { writeReport } from '../../report/html';
import { EXIT, UsageError } from '../errors';
import { requireRoot, withLabName, withRequests } from '../lab-options';
import { findLab } from '../../lab/providers';
import { LAB_PROTOCOLS, LabProtocol } from '../../lab/lb-config';

interface Args {
  name: string;
  mode?: Mode;
  requests: number;
  out?: string;
  report?: string;
  json: boolean;
  protocol?: LabProtocol;
  cache?: boolean;
}

export const labVerifyCommand: CommandModule<object, Args> = {
  command: 'verify',
  describe: "Capture on client, LB and real servers while the client makes HTTP requests, and judge the mode's packet facts",
  builder: (y) =>
    withRequests(withLabName(y), 'HTTP requests the client makes')
      .option('mode', { choices: MODES, describe: 'mode to judge against (default: the mode applied with `lab mode`)' })
      .option('out', { alias: 'o', type: 'string', describe: 'directory for the pcap files (default ./slbctl-pcaps/NAME/MODE)' })
      .option('report', {
        type: 'string',
        describe: "write an HTML report to this file: the packet ladder of the client's first connection beside the verdict's facts",
      })
      .option('json', {
        type: 'boolean',
        default: false,
        describe: 'print the verdict, the requests, the pcaps and the packet ladder as JSON',
      })
      .option('protocol', {
        choices: LAB_PROTOCOLS,
        describe:
          "service type to judge against (default: the one applied): tcp is L4 (the RS gets the client's own SYN), http/https L7 (the balancer answers the SYN and connects after the request)",
      })
      .option('cache', {
        type: 'boolean',
        describe: 'judge that the L7 reverse proxy caches: a repeated GET of a static object reaches no real server (default: as applied)',
      }),
  handler: async (args) => {
    if (args.mode === 'dsr' && args.protocol !== undefined && args.protocol !== 'tcp')
      throw new UsageError(`--mode dsr with --protocol ${args.protocol}: direct server return is L4 only, there is no L7 form to judge`);
    if (args.cache === true && args.protocol === 'tcp')
      throw new UsageError('--cache with --protocol tcp: only the L7 reverse proxy caches (--protocol http or https)');
    requireRoot('lab verify');
    const lab = await findLab(args.name);
    const expect = { ...(args.protocol ? { protocol: args.protocol } : {}), ...(args.cache !== undefined ? { cache: args.cache } : {}) };
    const report = await lab.verify(args.mode, args.requests, args.out, expect);
    const html = args.report ? writeReport(args.report, [report]) : undefined;
    if (args.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else {
      const answered = report.requests.filter((r) => r.ok);
      const perRs = new Map<string, number>();
      for (const r of answered) perRs.set(r.realServer ?? '?', (perRs.get(r.realServer ?? '?') ?? 0) + 1);
      process.stdout.write(
        `responses: ${[...perRs].map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}; client address the RSs reported: ${[...new Set(answered.map((r) => r.clientSeen))].join(', ') || '-'}\n`,
      );
      process.stdout.write(`${renderVerdict(report.verdict)}\npcaps: ${Object.values(report.pcaps).join(' ')}\n`);
      if (html) process.stdout.write(`report: ${html}\n`);
    }
    if (!report.verdict.pass) process.exitCode = EXIT.failed;
  },
};
