// The YAML way of parseConfig (parse.ts), in a module of its own so that
// only a command that reads YAML loads the yaml package.
import { LineCounter, parseDocument, isNode } from 'yaml';
import { expansionIssue } from './alias-guard';
import { ParseResult, PathPart, validateConfig } from './parse';

/** YAML text (or JSON that the fast path left), parsed and validated, with lines in its issues. */
export function parseYamlConfig(text: string): ParseResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      issues: doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        return {
          path: '',
          message: (e.message.split('\n')[0] ?? e.message).replace(/ at line \d+, column \d+:?$/, ''),
          ...(pos ? { line: pos.line, column: pos.col } : {}),
        };
      }),
    };
  }
  // Before toJS: a few lines of nested aliases can stand for billions of nodes.
  const bomb = expansionIssue(doc, lineCounter);
  if (bomb) return { ok: false, issues: [bomb] };
  const locate = (path: PathPart[]) => {
    // Point at the deepest node that exists on the path.
    for (let n = path.length; n >= 0; n--) {
      const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
      if (isNode(node) && node.range) {
        const pos = lineCounter.linePos(node.range[0]);
        return { line: pos.line, column: pos.col };
      }
    }
    return undefined;
  };
  let data: unknown;
  try {
    // The expansion was bounded above, so yaml's own alias limit (100, which refuses ordinary configs) is off.
    data = doc.toJS({ maxAliasCount: -1 });
  } catch (e) {
    return { ok: false, issues: [{ path: '', message: (e as Error).message }] };
  }
  return validateConfig(data, locate);
}
