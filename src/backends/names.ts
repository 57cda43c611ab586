// The backends slbctl has. The registry (registry.ts) maps each name to its
// implementation and fails to compile when one is missing.
export const BACKEND_NAMES = ['nft', 'ipvs'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];
