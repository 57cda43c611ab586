// Prints the VM plan as JSON for vagrant/Vagrantfile (run with `node`):
//   node topology-json.js [BALANCERS]   (1, the default, or 2: adds lb2)
import { vagrantPlan } from './plan';
import { REFERENCE_TOPOLOGY } from '../lab/topology';

const balancers = process.argv[2] === '2' ? 2 : 1;
process.stdout.write(`${JSON.stringify(vagrantPlan(REFERENCE_TOPOLOGY, balancers), null, 2)}\n`);
