// Read and validate a config file: every problem named with file, line and path.
import * as fs from 'node:fs';
import { Config } from './types';
import { formatIssue, parseConfig } from './parse';

export class ConfigFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigFileError';
  }
}

export function loadConfigFile(file: string): Config {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigFileError(`cannot read config ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  const result = parseConfig(text);
  if (!result.ok) {
    const lines = result.issues.map((i) => formatIssue(file, i));
    throw new ConfigFileError(`${file} has ${result.issues.length} error${result.issues.length === 1 ? '' : 's'}:\n${lines.map((l) => `  ${l}`).join('\n')}`);
  }
  return result.config;
}
