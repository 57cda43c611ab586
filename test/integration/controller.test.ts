// slbctl run on the nftables backend, in network namespaces on this kernel.
// The same scenarios run on IPVS inside user-mode-linux (test/uml/ipvs-controller.test.ts).
import {
  ScenarioOptions,
  controllerScenarios,
  dsrBlackholeScenario,
  sorryServerScenario,
  udpExpiryScenario,
} from '../helpers/controller-scenarios';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const o: ScenarioOptions = {
  backend: 'nft',
  tag: 'c',
  timing: { interval: 200, timeout: 150, rise: 2, fall: 2 },
  slackMs: 600,
  skip: isRoot ? false : 'needs root: network namespaces and nftables',
};
controllerScenarios(o);
udpExpiryScenario(o);
dsrBlackholeScenario(o);
sorryServerScenario(o);
