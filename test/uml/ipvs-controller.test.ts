// slbctl run on the IPVS backend (run inside user-mode-linux by
// test/integration/ipvs.test.ts): the same scenarios as on nftables.
import { controllerScenarios } from '../helpers/controller-scenarios';

controllerScenarios({ backend: 'ipvs', tag: 'uc', timing: { interval: 500, timeout: 400, rise: 2, fall: 2 }, slackMs: 2500 });
