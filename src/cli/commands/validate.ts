import type { CommandModule } from 'yargs';
import { loadConfig } from '../config-file';

interface Args {
  file: string;
}

export const validateCommand: CommandModule<object, Args> = {
  command: 'validate',
  describe: 'Check a config file and report every error with its path in the file',
  builder: (y) => y.option('file', { alias: 'f', type: 'string', demandOption: true, describe: 'config file (YAML or JSON)' }),
  handler: (args) => {
    const config = loadConfig(args.file);
    const rs = config.services.reduce((n, s) => n + s.realServers.length, 0);
    process.stdout.write(
      `${args.file}: valid (${config.services.length} service${config.services.length === 1 ? '' : 's'}, ${rs} real server${rs === 1 ? '' : 's'})\n`,
    );
  },
};
