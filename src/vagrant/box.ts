// Which box `lab up --provider vagrant` uses when none is named.
import { run } from '../util/exec';
import { LOCAL_BOX, PUBLIC_BOX } from './lab';

export async function defaultVagrantBox(): Promise<string> {
  if (process.env.SLBCTL_VAGRANT_BOX) return process.env.SLBCTL_VAGRANT_BOX;
  const r = await run(['vagrant', 'box', 'list'], { env: { ...process.env, VAGRANT_CHECKPOINT_DISABLE: '1' } });
  return r.stdout.split('\n').some((l) => l.startsWith(`${LOCAL_BOX} `)) ? LOCAL_BOX : PUBLIC_BOX;
}
