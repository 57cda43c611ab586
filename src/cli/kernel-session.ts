// Opens the kernel session (rtnetlink, IPVS) for a command and always closes it.
import { BackendChoice } from '../model/types';
import { KernelSession, closeSession, openSession } from '../engine/engine';

export async function withSession<T>(choice: BackendChoice, fn: (k: KernelSession) => Promise<T>): Promise<T> {
  const k = await openSession(choice);
  try {
    return await fn(k);
  } finally {
    closeSession(k);
  }
}
