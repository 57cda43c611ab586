// The L7 benchmark's real servers: Debian's nginx in each RS namespace, with
// a private config under a temp dir, in place of the lab's own Node.js HTTP
// server (which would be the bottleneck and hide the balancer's cost).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { labStateDir, nsName } from '../../src/lab/netns';
import { recordedServerPids, sleep, stopAllIn } from '../../src/lab/processes';
import { LabHostName, REAL_SERVERS, REFERENCE_TOPOLOGY, addressOf } from '../../src/lab/topology';
import { run, runChecked } from '../../src/util/exec';

/** The location the cache benchmark asks for: the RS marks it cacheable. */
export const STATIC_PATH = '/static/x';
const STATUS_PATH = '/nginx-status';

/** nginx's config for RS `h`, everything it writes under `dir` (the Vagrant bench writes it into the RS VMs). */
export function nginxConfig(h: LabHostName, dir: string, workers: number): string {
  const address = addressOf(REFERENCE_TOPOLOGY, h);
  const file = (name: string) => path.join(dir, `${h}-${name}`);
  return `# nginx for ${h} of the L7 benchmark (scripts/bench/l7.ts)
worker_processes ${workers};
pid ${file('nginx.pid')};
error_log ${file('error.log')};
events { worker_connections 4096; }
http {
    access_log off;
    # Everything nginx may write stays in the bench's temp dir.
    client_body_temp_path ${file('body')};
    proxy_temp_path ${file('proxy')};
    fastcgi_temp_path ${file('fastcgi')};
    uwsgi_temp_path ${file('uwsgi')};
    scgi_temp_path ${file('scgi')};
    # The default (1000) would close every keep-alive connection after 1000 requests.
    keepalive_requests 10000000;
    default_type text/plain;
    server {
        # Every address of the RS: with DSR the client's packets arrive for the VIP, which sits on the RS's lo.
        listen ${REFERENCE_TOPOLOGY.servicePort};
        location = / { return 200 "${h}\\n"; }
        location /static/ {
            add_header Cache-Control "public, max-age=60";
            return 200 "${h} static\\n";
        }
        # Connections and requests served, to count what reached the RS (cache hits do not).
        location = ${STATUS_PATH} { stub_status; allow ${address}; deny all; }
    }
}
`;
}

const configPath = (dir: string, h: LabHostName) => path.join(dir, `${h}-nginx.conf`);

/** The lab's own RS HTTP servers (by the pid files the lab keeps), stopped so port 80 is free. */
export async function stopLabServers(lab: string): Promise<void> {
  await stopAllIn([], () => recordedServerPids(labStateDir(lab)));
}

async function waitForAnswer(lab: string, h: LabHostName): Promise<void> {
  const url = `http://${addressOf(REFERENCE_TOPOLOGY, h)}:${REFERENCE_TOPOLOGY.servicePort}/`;
  const deadline = Date.now() + 5000;
  for (;;) {
    const r = await run(['curl', '-s', '-o', '/dev/null', '--max-time', '1', url], { netns: nsName(lab, h) });
    if (r.code === 0) return;
    if (Date.now() > deadline) throw new Error(`nginx in ${nsName(lab, h)} does not answer at ${url}`);
    await sleep(100);
  }
}

/** nginx in each RS namespace (daemonised: it outlives the `nginx` command run here), with this many worker processes. */
export async function startNginx(lab: string, dir: string, workers = 1): Promise<void> {
  for (const h of REAL_SERVERS) {
    fs.writeFileSync(configPath(dir, h), nginxConfig(h, dir, workers));
    // -e: the error log before the config is read, so nothing goes to /var/log/nginx.
    await runChecked(`nginx in ${nsName(lab, h)}`, ['nginx', '-e', path.join(dir, `${h}-error.log`), '-c', configPath(dir, h)], {
      netns: nsName(lab, h),
    });
    await waitForAnswer(lab, h);
  }
}

export async function stopNginx(lab: string, dir: string): Promise<void> {
  for (const h of REAL_SERVERS) {
    if (!fs.existsSync(configPath(dir, h))) continue;
    await run(['nginx', '-e', path.join(dir, `${h}-error.log`), '-c', configPath(dir, h), '-s', 'stop'], { netns: nsName(lab, h) });
  }
}

/** Connections accepted and requests served so far by all the RSs' nginx (each reading counts itself once in both). */
export async function servedByRealServers(lab: string): Promise<{ connections: number; requests: number }> {
  const total = { connections: 0, requests: 0 };
  for (const h of REAL_SERVERS) {
    const url = `http://${addressOf(REFERENCE_TOPOLOGY, h)}${STATUS_PATH}`;
    const r = await runChecked(`nginx status of ${h}`, ['curl', '-sS', '--max-time', '2', url], { netns: nsName(lab, h) });
    // "Active connections: 1 \nserver accepts handled requests\n 5 5 9 \n..."
    const counts = /^\s*(\d+)\s+(\d+)\s+(\d+)\s*$/m.exec(r.stdout);
    if (!counts) throw new Error(`nginx status of ${h}: unexpected ${JSON.stringify(r.stdout)}`);
    total.connections += Number(counts[1]);
    total.requests += Number(counts[3]);
  }
  return total;
}
