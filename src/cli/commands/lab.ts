import type { CommandModule } from 'yargs';
import { labUpCommand } from './lab-up';
import { labDownCommand } from './lab-down';
import { labModeCommand } from './lab-mode';
import { labVerifyCommand } from './lab-verify';
import { labExecCommand } from './lab-exec';

export const labCommand: CommandModule = {
  command: 'lab <command>',
  describe: 'The reference lab (client, router, LB, RS1, RS2) in network namespaces',
  builder: (y) => y
    .command(labUpCommand)
    .command(labDownCommand)
    .command(labModeCommand)
    .command(labVerifyCommand)
    .command(labExecCommand)
    .demandCommand(1, 'name a lab command: up, down, mode, verify, exec'),
  handler: () => undefined,
};
