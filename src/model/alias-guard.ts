// YAML aliases share one node many times over: nine lines of nested aliases
// (the "billion laughs") stand for 10^9 nodes, which the validator would walk
// one by one. This guard counts the nodes the document expands to without
// expanding it: each anchored node's expanded size is computed once and an
// alias adds that size. Ordinary configs with hundreds of aliases pass; a bomb
// is refused in one pass over the text's own nodes, with the alias's line.
import { Document, LineCounter, Node, isAlias, isMap, isPair, isScalar, isSeq } from 'yaml';
import type { ConfigIssue } from './parse';

/** Aliases may add this many nodes, or ten times the nodes written out, whichever is more. */
export const MIN_EXPANSION_LIMIT = 100_000;
const LIMIT_PER_WRITTEN_NODE = 10;

class Refusal extends Error {
  constructor(
    readonly node: Node,
    message: string,
  ) {
    super(message);
  }
}

/** Nodes written in the text itself (aliases count once). */
function writtenNodes(root: unknown): number {
  let n = 0;
  const walk = (x: unknown): void => {
    if (isPair(x)) {
      walk(x.key);
      walk(x.value);
      return;
    }
    if (!x || typeof x !== 'object') return;
    n += 1;
    if (isMap(x) || isSeq(x)) for (const item of x.items) walk(item);
  };
  walk(root);
  return n;
}

/**
 * The first alias at which the document's expansion passes the limit, that
 * refers to a node containing it (a cycle) or to no anchor, as a config issue
 * with its line; undefined when the document is safe to turn into data.
 */
export function expansionIssue(doc: Document, lines: LineCounter): ConfigIssue | undefined {
  const limit = Math.max(MIN_EXPANSION_LIMIT, LIMIT_PER_WRITTEN_NODE * writtenNodes(doc.contents));
  // yaml resolves an alias to the last node with its anchor before it, in document order: so does this walk.
  const anchors = new Map<string, Node>();
  const sizes = new Map<Node, number>();
  const open = new Set<Node>();
  let total = 0;
  const size = (x: unknown): number => {
    if (isPair(x)) return size(x.key) + size(x.value);
    if (isAlias(x)) {
      const target = anchors.get(x.source);
      if (!target)
        throw new Refusal(
          x,
          `alias *${x.source} has no anchor &${x.source} before it; define the anchor first (an alias can only repeat what came before)`,
        );
      if (open.has(target))
        throw new Refusal(x, `alias *${x.source} refers to a node that contains it (a cycle); write the repeated part out instead`);
      const n = sizes.get(target) ?? 1;
      total += n;
      if (total > limit)
        throw new Refusal(
          x,
          `the aliases expand this document to more than ${limit} nodes (a YAML alias bomb?); write the repeated parts out or nest fewer aliases`,
        );
      return n;
    }
    if (!isScalar(x) && !isMap(x) && !isSeq(x)) return 0;
    if (x.anchor) anchors.set(x.anchor, x);
    total += 1;
    let n = 1;
    if (isMap(x) || isSeq(x)) {
      open.add(x);
      for (const item of x.items) n += size(item);
      open.delete(x);
    }
    if (x.anchor) sizes.set(x, n);
    return n;
  };
  try {
    size(doc.contents);
    return undefined;
  } catch (e) {
    if (!(e instanceof Refusal)) throw e;
    const at = e.node.range ? lines.linePos(e.node.range[0]) : undefined;
    return { path: '', message: e.message, ...(at ? { line: at.line, column: at.col } : {}) };
  }
}
