// Read and validate a config file: every problem named with file, line and path.
import * as fs from 'node:fs';
import { Config } from './types';
import { ConfigError } from '../util/errors';
import { formatIssue, parseConfig } from './parse';

/** The config file cannot be read or is invalid (exit 2). */
export class ConfigFileError extends ConfigError {}

export function loadConfigFile(file: string): Config {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigFileError(
      `cannot read config ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`,
    );
  }
  return configFromText(file, text);
}

/** A config file's text, already read (e.g. once, with the digest of exactly those bytes), validated. */
export function configFromText(file: string, text: string): Config {
  const result = parseConfig(text);
  if (!result.ok) {
    const lines = result.issues.map((i) => formatIssue(file, i));
    throw new ConfigFileError(
      `${file} has ${result.issues.length} error${result.issues.length === 1 ? '' : 's'}:\n${lines.map((l) => `  ${l}`).join('\n')}`,
    );
  }
  return result.config;
}
