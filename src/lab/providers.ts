// Every lab provider, by name: the one place that lists them. A lab's later
// commands find it by its name: a provider whose record names it, else the
// netns provider (the default).
import { LabProvider, Lab } from './provider';
import { netnsProvider } from './netns-provider';
import { umlProvider } from '../uml/provider';
import { vagrantProvider } from '../vagrant/provider';

export const LAB_PROVIDERS = { netns: netnsProvider, uml: umlProvider, vagrant: vagrantProvider } as const satisfies Record<
  string,
  LabProvider
>;
export type LabProviderName = keyof typeof LAB_PROVIDERS;
export const LAB_PROVIDER_NAMES = Object.keys(LAB_PROVIDERS) as LabProviderName[];

/** The providers that keep a record of their labs, asked first; the netns provider answers for any other name. */
const BY_RECORD: LabProvider[] = Object.values(LAB_PROVIDERS).filter((p) => p !== netnsProvider);

/** The running lab of this name on a provider that records it, if any. */
export async function recordedLab(name: string, o: { leftovers?: boolean } = {}): Promise<Lab | undefined> {
  for (const p of BY_RECORD) {
    const lab = await p.find(name, o);
    if (lab) return lab;
  }
  return undefined;
}

/** The lab of this name, whichever provider runs it; `leftovers` also finds one whose record was lost. */
export async function findLab(name: string, o: { leftovers?: boolean } = {}): Promise<Lab> {
  return (await recordedLab(name, o)) ?? ((await netnsProvider.find(name)) as Lab);
}
