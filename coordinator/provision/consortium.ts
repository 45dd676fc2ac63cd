/**
 * Provisioning a consortium (as NVFlare's startup kits and Flower's CLI do): one folder with everything each party
 * needs, so that nobody writes keys, certificates or allow-lists by hand.
 *
 *   DIR/consortium.json          name, coordinator URL, host names/addresses, port (strict schema)
 *   DIR/ca/ca.crt, ca.key        the consortium CA (keep ca.key offline; it signs the coordinator's certificate)
 *   DIR/coordinator/             identity.json, tls.crt/tls.key (SANs = the given hosts), ca.crt, rest-token (0600),
 *                                enroll.json (the allow-list), coordinator.json (config), command.txt
 *   DIR/sites/<id>/              identity.json, coordinator.key, ca.crt, peers.json, command.txt, run-site.sh
 *
 * Secrets (identity files, TLS and CA keys, the REST token, the allow-list) are written owner-only (0600).
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { readConfigFile } from '../../protocol/common/index.ts';
import { Enrollment, SITE_ID_RE, generateIdentity, loadIdentity, parsePublicKey, publicKeyToString, saveIdentity, type Identity } from '../../protocol/index.ts';
import { createCa, issueServerCertificate, ProvisionError, subjectAltName } from './tls-certificates.ts';

export const consortiumFileSchema = z
  .object({
    v: z.literal(1),
    name: z.string().min(1),
    /** https://<first host>:<port>: what sites connect to. */
    url: z.string().url(),
    hosts: z.array(z.string().min(1)).min(1),
    port: z.number().int().min(1).max(65535),
    createdAt: z.string(),
  })
  .strict();
export type ConsortiumFile = z.infer<typeof consortiumFileSchema>;

export const CONSORTIUM_FILE = 'consortium.json';

/** Paths inside a consortium folder. */
export function consortiumPaths(dir: string) {
  const coordinator = join(dir, 'coordinator');
  return {
    file: join(dir, CONSORTIUM_FILE),
    caDir: join(dir, 'ca'),
    coordinator,
    enroll: join(coordinator, 'enroll.json'),
    coordinatorIdentity: join(coordinator, 'identity.json'),
    sitesDir: join(dir, 'sites'),
    site: (id: string) => join(dir, 'sites', id),
  };
}

async function writeSecret(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, text, { mode: 0o600 });
  await chmod(tmp, 0o600); // the mode of writeFile is masked by the umask
  await rename(tmp, file);
}

function checkSiteId(id: string): void {
  if (!SITE_ID_RE.test(id)) throw new ProvisionError('bad_site', `site id ${JSON.stringify(id)}: letters, digits, '.', '_' and '-', at most 64 characters`);
}

const urlHost = (h: string): string => (subjectAltName(h).type === 'ip' && h.includes(':') ? `[${h}]` : h);

export interface InitConsortiumOptions {
  readonly dir: string;
  readonly name: string;
  /** Host names and/or IP addresses of the coordinator (all go into the certificate; the first into the URL). */
  readonly hosts: readonly string[];
  readonly port: number;
  /** Sites to provision now (each gets a bundle with a fresh identity); more later with `enroll add`. */
  readonly sites: readonly string[];
  /** Rounds written into coordinator.json (default 12). */
  readonly rounds?: number;
  /** Replace an existing consortium folder's contents. */
  readonly force?: boolean;
}

export interface InitConsortiumResult {
  readonly consortium: ConsortiumFile;
  readonly coordinatorKey: string;
  readonly sites: readonly string[];
}

/** Creates a consortium folder: CA, coordinator identity + TLS + REST token + allow-list, one bundle per site. */
export async function initConsortium(o: InitConsortiumOptions): Promise<InitConsortiumResult> {
  const p = consortiumPaths(o.dir);
  const existing = await readdir(o.dir).catch(() => [] as string[]);
  if (existing.includes(CONSORTIUM_FILE) && !o.force) throw new ProvisionError('exists', `${p.file} exists (use --force to replace the consortium)`);
  for (const h of o.hosts) subjectAltName(h);
  for (const s of o.sites) checkSiteId(s);
  if (new Set(o.sites).size !== o.sites.length) throw new ProvisionError('bad_site', 'a site id is listed twice');
  if (o.force) for (const d of [p.caDir, p.coordinator, p.sitesDir]) await rm(d, { recursive: true, force: true });
  for (const d of [p.caDir, p.coordinator, p.sitesDir]) await mkdir(d, { recursive: true, mode: 0o700 });

  const ca = await createCa(o.name);
  await writeFile(join(p.caDir, 'ca.crt'), ca.cert);
  await writeSecret(join(p.caDir, 'ca.key'), ca.key);
  const tls = await issueServerCertificate(ca, o.hosts);
  await writeFile(join(p.coordinator, 'ca.crt'), ca.cert);
  await writeFile(join(p.coordinator, 'tls.crt'), tls.cert + ca.cert); // chain: leaf then CA
  await writeSecret(join(p.coordinator, 'tls.key'), tls.key);
  await writeSecret(join(p.coordinator, 'rest-token'), randomBytes(24).toString('hex') + '\n');
  const coordinatorIdentity = generateIdentity();
  await saveIdentity(p.coordinatorIdentity, coordinatorIdentity);
  const consortium: ConsortiumFile = {
    v: 1,
    name: o.name,
    url: `https://${urlHost(o.hosts[0])}:${o.port}`,
    hosts: [...o.hosts],
    port: o.port,
    createdAt: new Date().toISOString(),
  };
  await writeFile(p.file, JSON.stringify(consortium, null, 2) + '\n');
  // Paths in coordinator.json are relative to that file, so the folder can be moved to the coordinator's machine.
  // With 3 or more sites: secure aggregation and the pooled statistics rounds (a sum over 2 sites would reveal the
  // other's contribution). pixelBound is a public bound on the federation's labelled pixels (edit for larger data).
  const secure = o.sites.length >= 3 ? { secureAggregation: { clip: 8, maxExamples: 100_000 }, statistics: { pixelBound: 100_000_000 } } : {};
  const config = { host: '0.0.0.0', port: o.port, tls: { certFile: 'tls.crt', keyFile: 'tls.key' }, rounds: o.rounds ?? 12, minSites: Math.max(1, o.sites.length), ...secure };
  await writeFile(join(p.coordinator, 'coordinator.json'), JSON.stringify(config, null, 2) + '\n');
  await writeFile(join(p.coordinator, 'command.txt'), coordinatorCommand() + '\n');

  const enrollment = new Enrollment();
  const identities = new Map<string, Identity>();
  for (const s of o.sites) {
    const id = generateIdentity();
    identities.set(s, id);
    enrollment.allow(s, id.publicKey);
  }
  await enrollment.save(p.enroll);
  for (const s of o.sites) await writeSiteBundle(o.dir, consortium, s, identities.get(s)!, coordinatorIdentity.publicKey);
  await writePeersFiles(o.dir, enrollment);
  return { consortium, coordinatorKey: publicKeyToString(coordinatorIdentity.publicKey), sites: [...o.sites] };
}

/** The coordinator's command line, run from inside DIR/coordinator. */
export function coordinatorCommand(): string {
  return 'fedsfda coordinator --identity identity.json --enroll enroll.json --config coordinator.json --rest-token-file rest-token --init-weights init.fsws --out run';
}

/** A site's command line, run from inside its bundle folder; `identity` is the bundle's or the site's own file. */
export function siteCommand(c: ConsortiumFile, siteId: string, identity = 'identity.json'): string {
  return `fedsfda site --url ${c.url} --identity ${identity} --coordinator-key coordinator.key --site-id ${siteId} --ca ca.crt --peers peers.json --audit audit.jsonl --data "$DATA"`;
}

/** One site's bundle: its identity (unless it brought its own key), the coordinator key, the CA, its command line. */
async function writeSiteBundle(dir: string, c: ConsortiumFile, siteId: string, identity: Identity | null, coordinatorKey: Uint8Array): Promise<void> {
  const p = consortiumPaths(dir);
  const bundle = p.site(siteId);
  await mkdir(bundle, { recursive: true, mode: 0o700 });
  if (identity) await saveIdentity(join(bundle, 'identity.json'), identity);
  await writeFile(join(bundle, 'coordinator.key'), publicKeyToString(coordinatorKey) + '\n');
  await writeFile(join(bundle, 'ca.crt'), await readFile(join(p.caDir, 'ca.crt'), 'utf8'));
  const cmd = siteCommand(c, siteId, identity ? 'identity.json' : '<your identity file>');
  await writeFile(join(bundle, 'command.txt'), `# from inside this folder, with DATA set to your dataset folder:\n${cmd}\n`);
  if (!identity) return; // the site holds its own identity file: command.txt says where it goes
  const script = [
    '#!/bin/sh',
    '# usage: run-site.sh DATASET_DIR [more fedsfda site options, e.g. --size 128] (run it from anywhere)',
    'set -e',
    'DATA=$(cd "${1:?usage: run-site.sh DATASET_DIR [fedsfda site options]}" && pwd)',
    'shift',
    'cd "$(dirname "$0")"',
    `exec ${cmd} "$@"`,
    '',
  ];
  await writeFile(join(bundle, 'run-site.sh'), script.join('\n'), { mode: 0o755 });
}

/** peers.json (the allow-list without tokens) into every site bundle. */
async function writePeersFiles(dir: string, enrollment: Enrollment): Promise<string[]> {
  const p = consortiumPaths(dir);
  const peers = JSON.stringify({ v: 1, sites: enrollment.toJSON().sites }, null, 2) + '\n';
  const bundles = await readdir(p.sitesDir).catch(() => [] as string[]);
  for (const b of bundles) await writeFile(join(p.site(b), 'peers.json'), peers);
  return bundles;
}

export async function loadConsortium(dir: string): Promise<ConsortiumFile> {
  const p = consortiumPaths(dir);
  const exists = await readdir(dir).then((f) => f.includes(CONSORTIUM_FILE), () => false);
  if (!exists) throw new ProvisionError('not_found', `${dir} is not a consortium folder (no ${CONSORTIUM_FILE}; create one with \`fedsfda consortium init\`)`);
  return readConfigFile(consortiumFileSchema, p.file);
}

export interface EnrolledSite {
  readonly siteId: string;
  readonly publicKey: string;
  /** Whether DIR/sites/<id> holds a bundle. */
  readonly bundle: boolean;
}

/** Adds a site: a fresh identity in a new bundle, or `publicKey` when the site made its own. Updates every peers.json. */
export async function enrollAdd(dir: string, siteId: string, publicKey?: string): Promise<{ site: EnrolledSite; peersUpdated: string[] }> {
  checkSiteId(siteId);
  const c = await loadConsortium(dir);
  const p = consortiumPaths(dir);
  const enrollment = await Enrollment.load(p.enroll);
  if (enrollment.keyOf(siteId)) throw new ProvisionError('exists', `site ${siteId} is already enrolled (remove it first to replace its key)`);
  const identity = publicKey === undefined ? generateIdentity() : null;
  const key = identity ? identity.publicKey : parsePublicKey(publicKey!);
  enrollment.allow(siteId, key);
  const coordinator = await loadIdentity(p.coordinatorIdentity);
  await writeSiteBundle(dir, c, siteId, identity, coordinator.publicKey);
  await enrollment.save(p.enroll);
  const peersUpdated = await writePeersFiles(dir, enrollment);
  return { site: { siteId, publicKey: publicKeyToString(key), bundle: true }, peersUpdated };
}

/** Removes a site from the allow-list and every peers.json, and deletes its bundle (its key is now refused). */
export async function enrollRemove(dir: string, siteId: string): Promise<{ peersUpdated: string[] }> {
  await loadConsortium(dir);
  const p = consortiumPaths(dir);
  const current = (await Enrollment.load(p.enroll)).toJSON();
  if (!(siteId in current.sites)) throw new ProvisionError('not_found', `site ${siteId} is not enrolled`);
  const { [siteId]: _removed, ...rest } = current.sites;
  const enrollment = Enrollment.fromJSON({ ...current, sites: rest });
  await enrollment.save(p.enroll);
  await rm(p.site(siteId), { recursive: true, force: true });
  return { peersUpdated: await writePeersFiles(dir, enrollment) };
}

export async function enrollList(dir: string): Promise<EnrolledSite[]> {
  await loadConsortium(dir);
  const p = consortiumPaths(dir);
  const sites = (await Enrollment.load(p.enroll)).toJSON().sites;
  const bundles = new Set(await readdir(p.sitesDir).catch(() => [] as string[]));
  return Object.entries(sites).map(([siteId, publicKey]) => ({ siteId, publicKey, bundle: bundles.has(siteId) }));
}
