/**
 * `fedsfda site`: the agent a hospital runs. It connects outbound to the coordinator, trains on the local
 * dataset folder when asked, and keeps an audit log of everything it sends.
 *
 * @example
 * fedsfda site --url https://coord.example:8443 --identity site.json --coordinator-key <base64> \
 *   --site-id hospital-a --data /data/decathlon-task --audit audit.jsonl
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { Enrollment, loadIdentity, parsePublicKey } from '../../protocol/index.ts';
import { DEFAULT_GIVE_UP_AFTER_MS, DEFAULT_MAX_ATTEMPTS, runSite } from '../client/index.ts';
import { describeFirstIssue, getLogger } from '../../protocol/common/index.ts';
import { loadSiteDataset } from '../data/dataset/index.ts';
import { initEngine } from '../engine/index.ts';
import { asLocalTrainer, UNetTrainer } from '../client/index.ts';
import { splitByCase } from '../data/index.ts';
import { IntensityAugmentSchema, roundAugmenter, type IntensityAugmentOptions } from '../training/index.ts';
import { AuditLog, formatAudit, summarizeAudit } from './audit-log.ts';

function int(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`--${name} must be an integer in [${min}, ${max}]`);
    return n;
  };
}

function fraction(v: string): number {
  const n = Number(v);
  if (!(n > 0 && n < 1)) throw new InvalidArgumentError('must be a number in (0, 1)');
  return n;
}

/**
 * `--augment` alone: the nnU-Net-style set at p 0.5; `--augment '{"gin":{}}'`: the options of
 * site-agent/training/intensity-augment.ts as JSON (unknown fields and out-of-range values are refused by name).
 */
function augmentOption(v: string | true): IntensityAugmentOptions {
  let raw: unknown = {};
  if (v !== true) {
    try {
      raw = JSON.parse(v);
    } catch {
      throw new InvalidArgumentError(`--augment takes a JSON object of augmentation options, got ${JSON.stringify(v)}`);
    }
  }
  const parsed = IntensityAugmentSchema.safeParse(raw);
  if (!parsed.success) throw new InvalidArgumentError(`--augment ${describeFirstIssue(parsed.error, { root: 'options' })}`);
  return parsed.data;
}

/** The coordinator key may be given as base64 or as a file holding it (or an identity/public JSON with `publicKey`). */
async function readCoordinatorKey(arg: string): Promise<string> {
  let text = arg;
  try {
    text = (await readFile(arg, 'utf8')).trim();
  } catch {
    // not a file: the argument is the key itself
  }
  if (text.startsWith('{')) {
    const parsed = JSON.parse(text) as { publicKey?: unknown };
    if (typeof parsed.publicKey !== 'string') throw new InvalidArgumentError('--coordinator-key file has no "publicKey"');
    text = parsed.publicKey;
  }
  parsePublicKey(text); // validates length and encoding, with a typed error
  return text;
}

/** A PEM file's text; a clear error for a missing file or one without a PEM certificate. */
async function readPem(file: string, flag: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new InvalidArgumentError(`${flag} ${file}: ${(e as Error).message}`);
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) throw new InvalidArgumentError(`${flag} ${file} holds no PEM certificate`);
  return text;
}

/**
 * Peer identity keys from the consortium's allow-list file. Pinning them is what stops a malicious coordinator from
 * presenting keys it controls as "peers" in the first secure round a site joins (SECURITY.md, "Peer identities").
 */
async function readPeers(file: string): Promise<Record<string, Uint8Array>> {
  let enrollment: Enrollment;
  try {
    enrollment = await Enrollment.load(file);
  } catch (e) {
    throw new InvalidArgumentError(`--peers ${file}: ${(e as Error).message}`);
  }
  const ids = enrollment.siteIds();
  if (ids.length === 0) throw new InvalidArgumentError(`--peers ${file} lists no sites`);
  if (enrollment.toJSON().tokens.length > 0) console.error(`warning: --peers ${file} holds enrollment tokens; sites only need the public keys`);
  return Object.fromEntries(ids.map((id) => [id, enrollment.keyOf(id)!]));
}

interface SiteOptions {
  url: string;
  identity: string;
  coordinatorKey: string;
  siteId: string;
  data: string;
  size: number;
  axis: 0 | 1 | 2;
  classes?: number;
  valFraction: number;
  batch: number;
  optimizer: 'sgd' | 'adam';
  loss: 'ce' | 'dice' | 'ce+dice';
  seed: number;
  augment?: IntensityAugmentOptions | true;
  skipBad?: boolean;
  token?: string;
  audit: string;
  knownPeers: string;
  maxAttempts: number;
  giveUpAfter: number;
  backend?: string;
  ca?: string;
  peers?: string;
}

export function registerSiteCommands(program: Command): void {
  const site = program
    .command('site')
    .description('run a site agent (`fedsfda site --url ...`, the default `run`), or summarise its audit log (`fedsfda site audit FILE`)');
  // `run` is the default subcommand, so `fedsfda site --url ...` works as documented while its required options do not
  // apply to `fedsfda site audit` (commander checks a parent's required options for its subcommands too).
  site
    .command('run', { isDefault: true })
    .description('run a site agent: connect to the coordinator, train on local data when asked, audit what is sent')
    .requiredOption('--url <url>', 'coordinator URL')
    .requiredOption('--identity <file>', "this site's identity file (fedsfda identity new)")
    .requiredOption('--coordinator-key <key|file>', "the coordinator's public identity key (pinned)")
    .requiredOption('--site-id <id>', 'this site id, as enrolled at the coordinator')
    .requiredOption('--data <dir>', 'dataset folder (Decathlon / nnU-Net layout, or image/label pairs)')
    .option('--size <n>', 'model input size (slices are resized)', int('size', 8, 1024), 64)
    .option('--axis <n>', 'slice axis in canonical RAS: 0 sagittal, 1 coronal, 2 axial', int('axis', 0, 2), 2)
    .option('--classes <n>', 'number of classes incl. background (default: from the global model)', int('classes', 2, 255))
    .option('--val-fraction <f>', 'fraction of cases held out for local validation', fraction, 0.2)
    .option('--batch <n>', 'batch size', int('batch', 1, 1024), 8)
    .addOption(new Option('--optimizer <name>', 'local optimizer').choices(['sgd', 'adam']).default('adam'))
    .addOption(new Option('--loss <name>', 'training loss').choices(['ce', 'dice', 'ce+dice']).default('ce+dice'))
    .option('--seed <n>', 'seed for shuffling and the empty-slice choice', int('seed', 0, 2 ** 31 - 1), 0)
    .addOption(new Option('--augment [json]', 'train every round on a fresh augmented copy of the local data (domain randomisation; statistics and validation stay plain): alone the nnU-Net-style set, or a JSON object of options, e.g. \'{"prob":0.5,"gin":{}}\'').argParser(augmentOption))
    .option('--skip-bad', 'skip unusable files (listed) instead of refusing to start')
    .option('--token <token>', 'one-time enrollment token (first connection of a site not yet on the allow-list)')
    .option('--audit <file>', 'append-only audit log of what was sent', 'fedsfda-audit.jsonl')
    .option('--known-peers <file>', "peer sites' identity keys learned on first use, kept across restarts (a later change is refused)", 'fedsfda-known-peers.json')
    .option('--max-attempts <n>', 'give up after this many consecutive failed connection attempts', int('max-attempts', 1, 1_000_000), DEFAULT_MAX_ATTEMPTS)
    .option('--give-up-after <seconds>', 'give up after this long without a session with the coordinator', int('give-up-after', 1, 7 * 24 * 3600), DEFAULT_GIVE_UP_AFTER_MS / 1000)
    .option('--backend <name>', 'compute backend (also FEDSFDA_BACKEND)')
    .option('--ca <file>', 'extra trusted CA / coordinator certificate (PEM) for an https:// coordinator')
    .option('--peers <file>', "the consortium's allow-list ({\"v\":1,\"sites\":{id: key}}, as enroll.json without tokens): secure aggregation then runs only with these peer keys")
    .action(async (o: SiteOptions) => {
      const engine = await initEngine(o.backend !== undefined ? { backend: o.backend } : {});
      const { dataset, warnings } = await loadSiteDataset(resolve(o.data), {
        size: o.size,
        axis: o.axis,
        ...(o.classes !== undefined ? { numClasses: o.classes } : {}),
        seed: o.seed,
        skipBad: o.skipBad === true,
      });
      for (const w of warnings) console.error(`warning: ${w}`);
      const { train, val } = splitByCase(dataset, o.valFraction);
      console.log(`site ${o.siteId}: ${train.n} training / ${val.n} validation slices, backend ${engine.backend}`);

      const coordinatorKey = await readCoordinatorKey(o.coordinatorKey);
      const audit = new AuditLog(resolve(o.audit));
      audit.write({ type: 'session', siteId: o.siteId, coordinatorUrl: o.url, coordinatorKey });
      const augment = o.augment === true ? augmentOption(true) : o.augment;
      const trainer = new UNetTrainer({ train, val, batchSize: o.batch, optimizer: o.optimizer, loss: o.loss, seed: o.seed, ...(augment ? { augment: roundAugmenter(augment, o.seed) } : {}) });
      const result = await runSite({
        url: o.url,
        identity: await loadIdentity(o.identity),
        coordinatorPublicKey: coordinatorKey,
        siteId: o.siteId,
        ...(o.token !== undefined ? { enrollmentToken: o.token } : {}),
        reconnect: { maxAttempts: o.maxAttempts },
        giveUpAfterMs: o.giveUpAfter * 1000,
        logger: getLogger(),
        ...(o.ca !== undefined ? { tlsCa: await readPem(o.ca, '--ca') } : {}),
        ...(o.peers !== undefined ? { peerIdentities: await readPeers(o.peers) } : {}),
        knownPeersFile: resolve(o.knownPeers),
        trainer: asLocalTrainer(trainer),
        onProgress: (p) => {
          audit.write(p);
          if (p.type === 'fit') console.log(`round ${p.round}: sent update (${p.updateBytes} bytes), train loss ${p.metrics.trainLoss?.toFixed(4) ?? 'n/a'}`);
          if (p.type === 'evaluate') console.log(`round ${p.round}: validation Dice ${p.metrics.dice?.toFixed(3) ?? 'n/a'}`);
          if (p.type === 'failed') console.error(`round ${p.round} ${p.stage} failed: ${p.reason}`);
        },
      });
      console.log(`finished after round ${result.lastRound}: ${result.bytesSent} bytes sent, ${result.bytesReceived} received`);
    });

  site
    .command('audit <file>')
    .description('summarise a site audit log: what was sent, how many bytes, to whom')
    .option('--json', 'print the summary as JSON')
    .action((file: string, o: { json?: boolean }) => {
      const s = summarizeAudit(file);
      console.log(o.json ? JSON.stringify(s, null, 2) : formatAudit(s));
    });
}
