import type { CommandModule } from 'yargs';
export const labCommand: CommandModule = { command: 'lab', describe: 'not yet', handler: () => undefined };
