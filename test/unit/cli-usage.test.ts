// A usage error changes nothing: for every command and subcommand yargs is
// given (walked from the command modules themselves), an unknown option or a
// bad value exits 2 with the command's usage, and its handler never runs.
// Handlers are replaced by spies, so nothing here touches the host.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { commandNames, commandsFor, main } from '../../src/cli/main';
import { COMMANDS } from '../../src/cli/commands/index';
import { AnyCommand, commandName, subcommandsOf } from '../../src/cli/command-group';

interface Leaf {
  words: string[];
  module: AnyCommand;
}

/** Every command as the words that name it: groups and what they hold. */
function walk(list: readonly AnyCommand[], prefix: string[] = []): Leaf[] {
  return list.flatMap((module) => {
    const words = [...prefix, commandName(module)];
    return [{ words, module }, ...walk(subcommandsOf(module), words)];
  });
}

// Values for required positionals and options, by name. A command that needs
// one not listed here fails the "runs with valid arguments" control below.
const POSITIONAL_SAMPLES: Record<string, string> = {
  service: 'web',
  rs: '172.16.75.82',
  mode: 'dsr',
  host: 'lb',
  cmd: 'true',
  balancer: 'lb2',
};
const OPTION_SAMPLES: Record<string, string> = { file: 'examples/fullnat.yaml' };

/** The words of a command with a sample for each of its positionals (a group gets its first subcommand). */
function validArgs(leaf: Leaf): string[] {
  const spec = String(Array.isArray(leaf.module.command) ? leaf.module.command[0] : leaf.module.command);
  const positionals = [...spec.matchAll(/[<[](\w+)(?:\.\.)?[>\]]/g)].map((m) => m[1] ?? '');
  const sub = subcommandsOf(leaf.module)[0];
  return [
    ...leaf.words,
    ...positionals.map((p) => (p === 'command' && sub ? commandName(sub) : (POSITIONAL_SAMPLES[p] ?? `<no sample for ${p}>`))),
  ];
}

interface Outcome {
  code: number;
  stderr: string;
  ran: string[];
}

const calls: string[] = [];
const originals = new Map<AnyCommand, AnyCommand['handler']>();
const leaves = walk(COMMANDS);

/** slbctl's main in this process, with stderr captured and the exit code read and reset. */
async function slbctl(args: string[]): Promise<Outcome> {
  calls.length = 0;
  const write = process.stderr.write.bind(process.stderr);
  let stderr = '';
  process.stderr.write = (chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  };
  try {
    await main(args);
  } finally {
    process.stderr.write = write;
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = 0;
  return { code, stderr, ran: [...calls] };
}

/** Valid arguments, adding any demanded option yargs names that has a sample. */
async function runValid(leaf: Leaf, extra: string[] = []): Promise<Outcome & { args: string[] }> {
  const args = validArgs(leaf);
  for (;;) {
    const out = await slbctl([...args, ...extra]);
    const missing = /Missing required argument: (\w+)/.exec(out.stderr)?.[1];
    if (!missing || OPTION_SAMPLES[missing] === undefined || args.includes(`--${missing}`)) return { ...out, args };
    args.push(`--${missing}`, OPTION_SAMPLES[missing]);
  }
}

describe('every command refuses a bad command line before its handler runs', () => {
  before(() => {
    for (const leaf of leaves) {
      originals.set(leaf.module, leaf.module.handler);
      leaf.module.handler = () => {
        calls.push(leaf.words.join(' '));
      };
    }
  });
  after(() => {
    for (const [module, handler] of originals) module.handler = handler;
  });

  it('walks the whole command tree', () => {
    const names = leaves.map((l) => l.words.join(' '));
    assert.ok(names.includes('apply') && names.includes('lab up') && names.includes('lab verify'), names.join(', '));
    assert.equal(new Set(names).size, names.length);
  });

  for (const leaf of leaves) {
    const name = leaf.words.join(' ');
    const group = subcommandsOf(leaf.module).length > 0;
    it(`${name}: runs with valid arguments (the control), not with an unknown option`, async () => {
      const ok = await runValid(leaf);
      // A group hands over to its subcommand; the subcommand's own spy proves the control.
      assert.equal(ok.code, 0, `${ok.args.join(' ')}: ${ok.stderr}`);
      assert.equal(ok.ran.length, 1, `${ok.args.join(' ')} ran ${ok.ran.join(', ') || 'nothing'}`);
      if (!group) assert.deepEqual(ok.ran, [name]);

      const bad = await slbctl([...ok.args, '--bogus-option', '2']);
      assert.equal(bad.code, 2);
      assert.deepEqual(bad.ran, [], `${name} --bogus-option ran its handler`);
      assert.match(bad.stderr, /slbctl: Unknown arguments?: bogus-option/);
      // The usage of the command that was asked for, not just an error line.
      const usage = group ? (ok.ran[0] ?? name) : name;
      assert.match(bad.stderr, new RegExp(`^slbctl ${usage}`, 'm'), bad.stderr);
      assert.match(bad.stderr, /Options:/);
    });
  }

  const badValues: [string, string[], RegExp][] = [
    ['a choice that is not one', ['lab', 'up', '--provider', 'docker'], /Invalid values:[\s\S]*provider/],
    ['a number that is not one', ['lab', 'verify', '--requests', 'many'], /--requests must be a number/],
    ['a number out of range', ['demo', '-k', '0'], /--requests must be an integer from 1 to 1000/],
    ['a lab name namespaces cannot carry', ['lab', 'up', '--name', '../etc'], /lab name "\.\.\/etc" must be/],
    [
      'a resync beyond one day',
      ['run', '-f', 'x.yaml', '--resync', '3000000000s'],
      /--resync "3000000000s" is not a duration from 100ms to one day/,
    ],
    ['a metrics address that is not one', ['run', '-f', 'x.yaml', '--metrics', 'everywhere'], /--metrics "everywhere" is not address:port/],
    [
      'a drain deadline that is not a duration',
      ['drain', 'web', '172.16.75.82', '--deadline', 'soon'],
      /--deadline "soon" is not a duration/,
    ],
    ['lab exec without a command', ['lab', 'exec', 'lb'], /name the command to run, after --/],
    ['an unknown command', ['frobnicate'], /Unknown argument: frobnicate/],
    ['a group without its subcommand', ['lab'], /Not enough non-option arguments/],
    ['a group with an unknown subcommand', ['lab', 'sideways'], /name a lab command: up, down, mode, verify, exec/],
  ];
  for (const [what, args, message] of badValues) {
    it(`${what}: exit 2, the message, no handler (${args.join(' ')})`, async () => {
      const out = await slbctl(args);
      assert.equal(out.code, 2, out.stderr);
      assert.deepEqual(out.ran, []);
      assert.match(out.stderr, message);
    });
  }

  const failing: [string, AnyCommand['handler']][] = [
    [
      'thrown',
      () => {
        throw new Error('the handler failed');
      },
    ],
    ['rejected', () => Promise.reject(new Error('the handler failed'))],
  ];
  for (const [how, handler] of failing) {
    it(`a handler's own error (${how}) is reported once as its error, not as a usage error`, async () => {
      const validate = leaves.find((l) => l.words.join(' ') === 'validate');
      assert.ok(validate);
      const spy = validate.module.handler;
      validate.module.handler = handler;
      try {
        const out = await slbctl(['validate', '-f', 'x.yaml']);
        assert.equal(out.code, 1);
        assert.equal(out.stderr, 'slbctl: the handler failed\n');
      } finally {
        validate.module.handler = spy;
      }
    });
  }
});

describe('slbctl <command> loads only that command', () => {
  it('knows every top-level command by its name, and no other', () => {
    assert.deepEqual([...commandNames()].sort(), COMMANDS.map(commandName).sort());
  });

  it('gives yargs the very module of the named command, and every command when none is named', async () => {
    for (const c of COMMANDS) assert.deepEqual(await commandsFor([commandName(c), '--help']), [c]);
    assert.equal(await commandsFor(['--help']), COMMANDS);
    assert.equal(await commandsFor(['plna']), COMMANDS);
  });
});
