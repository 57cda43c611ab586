import { labUpCommand } from './lab-up';
import { labDownCommand } from './lab-down';
import { labModeCommand } from './lab-mode';
import { labVerifyCommand } from './lab-verify';
import { labExecCommand } from './lab-exec';
import { labFailCommand, labRecoverCommand } from './lab-fail';
import { AnyCommand, CommandGroup, anyCommand, commandName } from '../command-group';

const subcommands: readonly AnyCommand[] = [
  anyCommand(labUpCommand),
  anyCommand(labDownCommand),
  anyCommand(labModeCommand),
  anyCommand(labVerifyCommand),
  anyCommand(labExecCommand),
  anyCommand(labFailCommand),
  anyCommand(labRecoverCommand),
];

export const labCommand: CommandGroup = {
  command: 'lab <command>',
  describe: 'The reference lab (client, router, LB, RS1, RS2) in network namespaces',
  subcommands,
  builder: (y) =>
    subcommands.reduce((acc, c) => acc.command(c), y).demandCommand(1, `name a lab command: ${subcommands.map(commandName).join(', ')}`),
  handler: () => undefined,
};
