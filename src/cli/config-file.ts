// The config options every command that reads a config takes.
import type { Argv } from 'yargs';
import { BACKENDS } from '../model/types';

export { loadConfigFile as loadConfig } from '../model/load';

export function withConfigOptions<T>(y: Argv<T>) {
  return y
    .option('file', { alias: 'f', type: 'string', demandOption: true, describe: 'config file (YAML or JSON)' })
    .option('backend', { choices: BACKENDS, describe: "override the config's backend" });
}
