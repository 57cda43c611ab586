// Read and validate a config file for the CLI.
import * as fs from 'node:fs';
import type { Argv } from 'yargs';
import { BACKENDS, Config } from '../model/types';
import { formatIssue, parseConfig } from '../model/parse';
import { UsageError } from './errors';

export function loadConfig(file: string): Config {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read config ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  const result = parseConfig(text);
  if (!result.ok) {
    const lines = result.issues.map((i) => formatIssue(file, i));
    throw new UsageError(`${file} has ${result.issues.length} error${result.issues.length === 1 ? '' : 's'}:\n${lines.map((l) => `  ${l}`).join('\n')}`);
  }
  return result.config;
}

/** The options every command that reads a config takes. */
export function withConfigOptions<T>(y: Argv<T>) {
  return y
    .option('file', { alias: 'f', type: 'string', demandOption: true, describe: 'config file (YAML or JSON)' })
    .option('backend', { choices: BACKENDS, describe: 'override the config\'s backend' });
}
