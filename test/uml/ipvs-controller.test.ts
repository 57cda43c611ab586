// slbctl run on the IPVS backend (run inside user-mode-linux by
// test/integration/ipvs.test.ts): the same scenarios as on nftables, with
// check timing and slack suited to that slower kernel.
import { ScenarioOptions, controllerScenarios, dsrBlackholeScenario, udpExpiryScenario } from '../helpers/controller-scenarios';

const o: ScenarioOptions = { backend: 'ipvs', tag: 'uc', timing: { interval: 500, timeout: 400, rise: 2, fall: 2 }, slackMs: 2500 };
controllerScenarios(o);
udpExpiryScenario(o);
dsrBlackholeScenario(o);
