// renderHaproxyConfig: each scenario's haproxy.cfg is a golden file a reader
// can review, test/fixtures/haproxy/<scenario>.cfg (UPDATE_GOLDEN=1 rewrites
// them). Where haproxy is installed, every scenario also passes `haproxy -c`
// (the https one with a certificate made here), so a golden file can never
// pin a config HAProxy would refuse.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  backendName,
  haproxyWeight,
  instancePaths,
  L7RealServer,
  L7Service,
  pemPathOf,
  renderHaproxyConfig,
  serverName,
} from '../../src/backends/haproxy/render';
import { selfSignedCertificate } from '../../src/util/certificate';
import { findCommand, run } from '../../src/util/exec';

/** Golden files live in the source tree (this file runs as dist/test/unit/haproxy-render.test.js). */
const GOLDEN_DIR = path.join(__dirname, '..', '..', '..', 'test', 'fixtures', 'haproxy');
const PATHS = instancePaths('/run/slbctl/haproxy/lb');

const rs = (address: string, weight = 1, port = 80): L7RealServer => ({ address, port, weight });
const web = (over: Partial<L7Service> = {}): L7Service => ({
  key: 'http/172.16.75.84:80',
  name: 'web',
  vip: '172.16.75.84',
  port: 80,
  protocol: 'http',
  mode: 'fullnat',
  scheduler: 'rr',
  snatAddress: '172.16.75.83',
  realServers: [rs('172.16.75.82'), rs('172.16.75.85')],
  ...over,
});
const tls = web({
  key: 'https/172.16.75.84:443',
  name: 'tls',
  port: 443,
  protocol: 'https',
  tls: { certificate: '/etc/slbctl/web.crt', key: '/etc/slbctl/web.key' },
});

const SCENARIOS: Record<string, L7Service[]> = {
  'fullnat-http': [web()],
  'transparent-http': [web({ mode: 'transparent', snatAddress: undefined, scheduler: 'sh' })],
  'https-tls': [tls],
  cache: [web({ cache: { maxAgeSeconds: 30, maxObjectBytes: 100_000, totalBytes: 16 * 1024 * 1024 } })],
  // Given out of key order: the text must not depend on it.
  'two-services': [tls, web({ scheduler: 'lc', snatAddress: undefined })],
  'weight-zero': [web({ scheduler: 'wrr', realServers: [rs('172.16.75.82', 3), rs('172.16.75.85', 0), rs('172.16.75.86', 1000, 8080)] })],
};

function golden(name: string, text: string): void {
  const file = path.join(GOLDEN_DIR, `${name}.cfg`);
  if (process.env.UPDATE_GOLDEN === '1') fs.writeFileSync(file, text);
  assert.equal(text, fs.readFileSync(file, 'utf8'), `${name}: rendered config differs from ${file}`);
}

/** A self-signed PEM (certificate + key) for haproxy -c to load, or undefined without openssl. */
async function selfSignedPem(dir: string): Promise<string | undefined> {
  if (!findCommand('openssl')) return undefined;
  const made = await selfSignedCertificate(dir, 'c', 'slbctl-test', 1).catch(() => undefined);
  return made && fs.readFileSync(made.certificate, 'utf8') + fs.readFileSync(made.key, 'utf8');
}

describe('haproxy config rendering', () => {
  for (const [name, services] of Object.entries(SCENARIOS)) {
    it(`${name} matches its golden file`, () => golden(name, renderHaproxyConfig(services, PATHS)));
  }

  it('every scenario passes haproxy -c', { skip: findCommand('haproxy') ? false : 'haproxy is not installed' }, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slbctl-hp-render-'));
    try {
      const paths = instancePaths(dir);
      const pem = await selfSignedPem(dir);
      for (const [name, services] of Object.entries(SCENARIOS)) {
        if (services.some((s) => s.tls) && !pem) {
          t.diagnostic(`${name}: not checked, openssl could not make a certificate`);
          continue;
        }
        for (const s of services) if (s.tls && pem) fs.writeFileSync(pemPathOf(s.key, paths), pem);
        fs.writeFileSync(paths.config, renderHaproxyConfig(services, paths));
        const r = await run(['haproxy', '-c', '-f', paths.config]);
        assert.equal(r.code, 0, `${name}: ${r.stdout}${r.stderr}`);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names are stable and address the runtime API', () => {
    assert.equal(backendName('http/172.16.75.84:80'), 'be_http_172_16_75_84_80');
    assert.equal(serverName({ address: '10.0.0.1', port: 80 }), 'rs_10_0_0_1_80');
    assert.equal(serverName({ address: '2001:db8::1', port: 8080 }), 'rs_2001_db8__1_8080');
  });

  it('weights are clamped to HAProxy 0..256', () => {
    assert.deepEqual([0, 1, 255, 256, 257, 65535, -3, 2.4].map(haproxyWeight), [0, 1, 255, 256, 256, 256, 0, 2]);
  });

  it('refuses two services, or two real servers, that would share a name', () => {
    assert.throws(() => renderHaproxyConfig([web(), web()], PATHS), /would both be named be_http_172_16_75_84_80/);
    assert.throws(
      () => renderHaproxyConfig([web({ realServers: [rs('10.0.0.1'), rs('10.0.0.1')] })], PATHS),
      /lists real server 10\.0\.0\.1:80 twice/,
    );
  });

  it('refuses anything but an address where an address goes, and keeps names inside their comment', () => {
    assert.throws(() => renderHaproxyConfig([web({ vip: '10.0.0.1:80 ssl' })], PATHS), /VIP "10\.0\.0\.1:80 ssl" is not an IP address/);
    assert.throws(() => renderHaproxyConfig([web({ realServers: [rs('10.0.0.1', 1, 0)] })], PATHS), /port 0, not 1\.\.65535/);
    const text = renderHaproxyConfig([web({ name: 'web\nglobal' })], PATHS);
    assert.ok(text.includes('# web?global ('), text);
  });
});
