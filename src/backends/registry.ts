// Every backend, by name: the one place that lists them. A new backend is a
// folder under src/backends, its name in names.ts and its line here (the
// compiler refuses a name without an implementation).
import { Backend } from './types';
import { BackendName } from './names';
import { nftBackend } from './nft';
import { ipvsBackend } from './ipvs';

export const BACKENDS: { [B in BackendName]: Backend<B> } = {
  nft: nftBackend,
  ipvs: ipvsBackend,
};

export function backendOf(name: BackendName): Backend {
  return BACKENDS[name];
}

/** The order auto tries them in: the kernel's own load balancer first. */
export const AUTO_ORDER: readonly BackendName[] = ['ipvs', 'nft'];
