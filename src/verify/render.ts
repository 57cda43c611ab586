// Verdict -> terminal table.
import { renderTable } from '../util/table';
import { MODE_TITLES } from '../lab/lb-config';
import { Verdict } from './facts';

export function renderVerdict(v: Verdict): string {
  const rows = v.facts.map((f) => [f.fact, f.expected, f.seen, f.pass ? 'pass' : 'FAIL']);
  const table = renderTable(['FACT', 'EXPECTED', 'SEEN', 'RESULT'], rows);
  const failed = v.facts.filter((f) => !f.pass);
  const title = v.title ?? MODE_TITLES[v.mode];
  const summary = v.pass
    ? `verdict: PASS: ${v.mode} (${title}) is in effect`
    : `verdict: FAIL: the packets do not show ${v.mode} (${title}):\n${failed.map((f) => `  - ${f.fact}: ${f.why ?? 'not as expected'}`).join('\n')}`;
  return `${table}\n${summary}`;
}
