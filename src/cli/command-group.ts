// A command that only groups others (`lab up`, `lab down` …). It keeps its
// subcommands as data beside the yargs module, so help, tests and anything
// else that walks the command tree read the same list yargs is given.
import type { CommandModule } from 'yargs';

/** Any command module, whatever its arguments. */
export type AnyCommand = CommandModule<object, never>;

/**
 * One command in a list of different commands. yargs types a module by its
 * arguments, so a list can only hold them with the arguments erased; the
 * object is the same, and yargs still hands each handler what its own builder
 * declared.
 */
export function anyCommand<U>(c: CommandModule<object, U>): AnyCommand {
  return c as unknown as AnyCommand;
}

export interface CommandGroup extends CommandModule {
  subcommands: readonly AnyCommand[];
}

/** The subcommands of a group, none for a plain command. */
export function subcommandsOf(c: AnyCommand): readonly AnyCommand[] {
  const group = c as Partial<CommandGroup>;
  return group.subcommands ?? [];
}

/** The command's name: the first word of its yargs command string. */
export function commandName(c: AnyCommand): string {
  const spec: unknown = Array.isArray(c.command) ? (c.command as unknown[])[0] : c.command;
  return typeof spec === 'string' ? (spec.split(' ')[0] ?? '') : '';
}
