// Opens the rtnetlink socket for a command and always closes it.
import { Rtnl } from '../kernel/rtnl/rtnl';

export async function withRtnl<T>(fn: (rtnl: Rtnl) => Promise<T>): Promise<T> {
  const rtnl = Rtnl.open();
  try {
    return await fn(rtnl);
  } finally {
    rtnl.close();
  }
}
