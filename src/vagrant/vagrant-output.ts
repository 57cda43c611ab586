// The one line of a failed `vagrant up`'s output that says why, for lab
// up's one-sentence error: vagrant's own message, or the message of the
// Ruby exception a plugin let through, never its backtrace (the whole
// output stays in the log file).

const PROGRESS = /^(==> |\s+\S+: )/;
// `/…/wait_for.rb:9:in `wait_for': The specified … exceeded (Fog::Errors::TimeoutError)`
const RUBY_EXCEPTION = /^\S+\.rb:\d+:in [`'][^']*': (.+)$/;
const BACKTRACE = /^\s+from \S+\.rb:\d+/;
const MAX_CHARS = 300;

export function vagrantErrorLine(output: string): string {
  const lines = output.split(/\r?\n/).map((l) => l.trimEnd());
  const exception = lines.map((l) => RUBY_EXCEPTION.exec(l)?.[1]).filter((m): m is string => m !== undefined).at(-1);
  if (exception) return cut(`vagrant raised ${exception}`);
  // Vagrant prints its error after the last progress line; its first
  // paragraph says what went wrong, the later ones give general advice.
  const lastProgress = lines.reduce((at, l, i) => (PROGRESS.test(l) ? i : at), -1);
  const after = lines.slice(lastProgress + 1).filter((l) => !BACKTRACE.test(l));
  const start = after.findIndex((l) => l.trim() !== '');
  if (start < 0) return 'vagrant printed no error message';
  const end = after.indexOf('', start);
  return cut(after.slice(start, end < 0 ? undefined : end).map((l) => l.trim()).join(' '));
}

function cut(text: string): string {
  return text.length > MAX_CHARS ? `${text.slice(0, MAX_CHARS - 1)}…` : text;
}
