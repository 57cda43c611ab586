// Prints the VM plan as JSON for vagrant/Vagrantfile (run with `node`).
import { vagrantPlan } from './plan';

process.stdout.write(`${JSON.stringify(vagrantPlan(), null, 2)}\n`);
