/**
 * The consortium's TLS material, made in-process with @peculiar/x509 over Node's WebCrypto (no openssl CLI): a CA
 * (ECDSA P-256, self-signed, path length 0) and the coordinator's server certificate signed by it, whose subject
 * alternative names cover every host name AND IP address the sites will use (a TLS client checks an IP address only
 * against IP SANs, so an IP-addressed trial fails with a DNS-only certificate). Keys are PKCS#8 PEM.
 */
import { isIP } from 'node:net';
import { webcrypto } from 'node:crypto';
// @peculiar/x509 resolves its ASN.1 classes through tsyringe, which needs a Reflect metadata polyfill loaded first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

const crypto = webcrypto as unknown as Crypto;
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

export class ProvisionError extends Error {
  override readonly name = 'ProvisionError';
  constructor(
    readonly code: 'bad_host' | 'bad_site' | 'exists' | 'not_found' | 'bad_consortium',
    message: string,
  ) {
    super(message);
  }
}

export interface PemPair {
  /** PEM certificate. */
  readonly cert: string;
  /** PEM PKCS#8 private key (store owner-only). */
  readonly key: string;
}

/** PEM text ending with a newline, so that files and chains can be concatenated. */
const pemText = (pem: string): string => (pem.endsWith('\n') ? pem : `${pem}\n`);

async function keyPem(key: CryptoKey): Promise<string> {
  const der = await crypto.subtle.exportKey('pkcs8', key);
  return pemText(x509.PemConverter.encode(der, 'PRIVATE KEY'));
}

async function importKey(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decode(pem)[0];
  return crypto.subtle.importKey('pkcs8', der, ALG, true, ['sign']);
}

function serial(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[0] &= 0x7f; // positive INTEGER
  return Buffer.from(b).toString('hex');
}

/** A host name or IP address as a SAN entry; anything else is refused. */
export function subjectAltName(host: string): { type: 'dns' | 'ip'; value: string } {
  if (isIP(host) !== 0) return { type: 'ip', value: host };
  if (/^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(host)) return { type: 'dns', value: host.toLowerCase() };
  throw new ProvisionError('bad_host', `${JSON.stringify(host)} is neither a host name nor an IP address`);
}

/** A new self-signed CA for the consortium. */
export async function createCa(name: string, days = 3650): Promise<PemPair> {
  const keys = await crypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial(),
      name: `CN=${name.replace(/[,=+<>#;\\"]/g, ' ')} CA, O=fedsfda`,
      notBefore: new Date(now - DAY_MS),
      notAfter: new Date(now + days * DAY_MS),
      keys,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  return { cert: pemText(cert.toString('pem')), key: await keyPem(keys.privateKey) };
}

/** A TLS server certificate for `hosts` (names and/or IP addresses), signed by `ca`. */
export async function issueServerCertificate(ca: PemPair, hosts: readonly string[], days = 825): Promise<PemPair> {
  if (hosts.length === 0) throw new ProvisionError('bad_host', 'a server certificate needs at least one host name or IP address');
  const sans = hosts.map(subjectAltName);
  const caCert = new x509.X509Certificate(ca.cert);
  const caKey = await importKey(ca.key);
  const keys = await crypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serial(),
      subject: `CN=${sans[0].value}, O=fedsfda`,
      issuer: caCert.subject,
      notBefore: new Date(now - DAY_MS),
      notAfter: new Date(now + days * DAY_MS),
      publicKey: keys.publicKey,
      signingKey: caKey,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
        new x509.SubjectAlternativeNameExtension(sans, false),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
        await x509.AuthorityKeyIdentifierExtension.create(caCert, false, crypto),
      ],
    },
    crypto,
  );
  return { cert: pemText(cert.toString('pem')), key: await keyPem(keys.privateKey) };
}

/** The SAN entries of a PEM certificate, as `dns:name` / `ip:addr` (for `consortium` listings and tests). */
export function certificateHosts(pem: string): string[] {
  const ext = new x509.X509Certificate(pem).getExtension(x509.SubjectAlternativeNameExtension);
  return ext ? ext.names.toJSON().map((n) => `${n.type}:${n.value}`) : [];
}
