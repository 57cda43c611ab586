import type { CommandModule } from 'yargs';
export const demoCommand: CommandModule = { command: 'demo', describe: 'not yet', handler: () => undefined };
