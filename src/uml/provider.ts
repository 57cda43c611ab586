// The lab inside a user-mode-linux kernel with IPVS that keeps running until
// lab down: every command for the lab is the same slbctl command run inside
// the guest (src/uml/lab.ts), its output and exit code brought back.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Lab, LabProvider, Say } from '../lab/provider';
import { LabError } from '../lab/errors';
import { VerifyReport } from '../verify/flow';
import { UmlLabRecord, forwardToUml, startUmlLab, stopUmlLab, umlLab } from './lab';

function umlLabOf(record: UmlLabRecord): Lab {
  const name = record.lab;
  const inside = async (args: string[], say: Say, show: string[] = []) => {
    const r = await forwardToUml(record, [...args, '--name', name], undefined, show);
    for (const line of r.output.trimEnd().split('\n')) if (line) say(line);
    return r.code;
  };
  return {
    name,
    provider: 'uml',
    async mode(mode, o, say) {
      const l7 = o.protocol === 'tcp' ? [] : ['--protocol', o.protocol, ...(o.cache ? ['--cache'] : [])];
      // --ha vrrp: the guest's lab picks the IPVS sync daemons for the pair (its backend is IPVS), not conntrackd.
      // Adverts every second, not 100 ms: the guest's one CPU, busy with verify's captures and spawns, delayed
      // them past three intervals and the standby took over from a live master (both MASTER, then flapping).
      const vrrp =
        o.ha === 'vrrp' ? ['--advert-interval', String(o.advertIntervalMs ?? 1000), ...(o.sync === false ? ['--no-sync'] : [])] : [];
      const ha = o.ha ? ['--ha', o.ha, ...vrrp] : [];
      const code = await inside(['lab', 'mode', mode, '--backend', o.backend, '--encapsulation', o.encapsulation, ...l7, ...ha], say);
      if (code !== 0) throw new LabError(`lab mode ${mode} inside the user-mode-linux kernel failed (exit ${code})`);
    },
    async verify(mode, requests, out, expect) {
      // The guest judges and answers in JSON; its pcaps are on the host (the guest's root is the host's filesystem,
      // and the working directory and --out are shown to it wherever they are). Without --out the guest picks
      // ./slbctl-pcaps/LAB/MODE itself, as it alone knows the applied mode.
      const dir = out === undefined ? undefined : path.resolve(out);
      if (dir) fs.mkdirSync(dir, { recursive: true });
      const args = [
        'lab',
        'verify',
        '--name',
        name,
        '--json',
        '--requests',
        String(requests),
        ...(dir ? ['--out', dir] : []),
        ...(mode ? ['--mode', mode] : []),
        ...(expect?.protocol ? ['--protocol', expect.protocol] : []),
        ...(expect?.cache !== undefined ? [expect.cache ? '--cache' : '--no-cache'] : []),
      ];
      const r = await forwardToUml(record, args, undefined, dir ? [dir] : []);
      const json = r.output.slice(r.output.indexOf('{'));
      try {
        return JSON.parse(json) as VerifyReport;
      } catch {
        throw new LabError(`lab verify inside the user-mode-linux kernel failed (exit ${r.code}): ${r.output.trim()}`);
      }
    },
    // Two balancers: the guest runs the netns lab's fail and recover (src/lab/ha.ts) on its own router and balancers.
    async fail(balancer, say) {
      const code = await inside(['lab', 'fail', balancer], say);
      if (code !== 0) throw new LabError(`lab fail ${balancer} inside the user-mode-linux kernel failed (exit ${code})`);
    },
    async recover(balancer, say) {
      const code = await inside(['lab', 'recover', balancer], say);
      if (code !== 0) throw new LabError(`lab recover ${balancer} inside the user-mode-linux kernel failed (exit ${code})`);
    },
    async exec(host, argv) {
      const r = await forwardToUml(record, ['lab', 'exec', host, '--name', name, '--', ...argv]);
      return { argv, code: r.code, signal: null, stdout: r.output, stderr: '' };
    },
    async down(say) {
      await inside(['lab', 'down'], say).catch((e: unknown) => say(e instanceof Error ? e.message : String(e)));
      await stopUmlLab(record);
      say(`lab "${name}": user-mode-linux kernel (pid ${record.pid}) stopped`);
    },
  };
}

export const umlProvider: LabProvider = {
  name: 'uml',
  describe: 'namespaces inside a user-mode-linux kernel with IPVS that keeps running until lab down',
  async find(name) {
    const record = umlLab(name);
    return record ? umlLabOf(record) : undefined;
  },
  async up(name, options, say) {
    const started = Date.now();
    const record = await startUmlLab(name, (line) => say(`  ${line}`));
    const r = await forwardToUml(record, ['lab', 'up', '--name', name, '--balancers', String(options.balancers ?? 1)]);
    for (const line of r.output.trimEnd().split('\n')) if (line) say(line);
    if (r.code !== 0) {
      await stopUmlLab(record);
      throw new LabError(`lab up inside the user-mode-linux kernel failed (exit ${r.code}); the kernel was stopped`);
    }
    return `(on user-mode-linux, ${((Date.now() - started) / 1000).toFixed(1)} s in all; its kernel has IPVS: lab mode picks it)`;
  },
};
