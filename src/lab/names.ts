// Lab names end up in namespace names, interface-adjacent names and a path
// under /run that `lab down` deletes recursively, so they are checked once,
// here, before any of those is built from them.
import { LabError } from './errors';
import { LabHostName } from './topology';

// 12 characters at most: "<lab>-router" then stays a short, readable
// namespace name, and nothing like "." or "/" can reach a path.
const NAME_RULE = /^[a-z0-9][a-z0-9-]{0,11}$/;

export function checkLabName(lab: string): void {
  if (!NAME_RULE.test(lab)) {
    throw new LabError(`lab name "${lab}" must be 1-12 characters of a-z, 0-9 and "-", starting with a letter or digit`);
  }
}

export function nsName(lab: string, host: LabHostName): string {
  checkLabName(lab);
  return `${lab}-${host}`;
}
