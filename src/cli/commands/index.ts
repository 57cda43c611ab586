// Every top-level command, loaded together: for `slbctl --help`, a command
// line that names no command slbctl has, and the tests that walk the tree.
// `slbctl <command>` itself loads only its own module (main.ts).
import { applyCommand } from './apply';
import { destroyCommand } from './destroy';
import { planCommand } from './plan';
import { statusCommand } from './status';
import { validateCommand } from './validate';
import { labCommand } from './lab';
import { demoCommand } from './demo';
import { runCommand } from './run';
import { drainCommand, undrainCommand } from './drain';
import { AnyCommand, anyCommand } from '../command-group';

export const COMMANDS: readonly AnyCommand[] = [
  anyCommand(validateCommand),
  anyCommand(planCommand),
  anyCommand(applyCommand),
  anyCommand(statusCommand),
  anyCommand(destroyCommand),
  anyCommand(runCommand),
  anyCommand(drainCommand),
  anyCommand(undrainCommand),
  anyCommand(labCommand),
  anyCommand(demoCommand),
];
