// A lab's small state file under /run (tmpfs: gone at reboot, like the namespaces).
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface LabState {
  provider: 'netns';
  mode?: string;
  createdAt: string;
}

export const LAB_STATE_ROOT = '/run/slbctl/lab';

export function labStateDir(lab: string): string {
  return path.join(LAB_STATE_ROOT, lab);
}

export async function readLabState(lab: string): Promise<LabState | undefined> {
  try {
    return JSON.parse(await fs.promises.readFile(path.join(labStateDir(lab), 'state.json'), 'utf8')) as LabState;
  } catch {
    return undefined;
  }
}

export async function writeLabState(lab: string, patch: Partial<LabState>): Promise<void> {
  const current = (await readLabState(lab)) ?? { provider: 'netns', createdAt: new Date().toISOString() };
  await fs.promises.mkdir(labStateDir(lab), { recursive: true });
  await fs.promises.writeFile(path.join(labStateDir(lab), 'state.json'), `${JSON.stringify({ ...current, ...patch }, null, 2)}\n`);
}
