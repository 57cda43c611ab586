// A self-signed certificate and its key (PEM files, the key 0600) made by
// Debian's openssl: the lab's https balancer and the tests' TLS services.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runChecked } from './exec';

export interface CertificateFiles {
  certificate: string;
  key: string;
}

/** `DIR/NAME.crt` and `DIR/NAME.key` for `commonName` (an IP address also goes in as its subject alternative name). */
export async function selfSignedCertificate(dir: string, name: string, commonName: string, days = 30): Promise<CertificateFiles> {
  const certificate = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  const san = /^\d+\.\d+\.\d+\.\d+$/.test(commonName) ? ['-addext', `subjectAltName=IP:${commonName}`] : [];
  await runChecked('openssl req (a self-signed certificate)', [
    'openssl',
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    String(days),
    '-subj',
    `/CN=${commonName}`,
    ...san,
    '-keyout',
    key,
    '-out',
    certificate,
  ]);
  fs.chmodSync(key, 0o600);
  return { certificate, key };
}
