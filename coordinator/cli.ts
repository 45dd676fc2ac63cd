/**
 * CLI commands of the federation's server side:
 *   fedsfda identity new --out FILE         create an Ed25519 identity file (prints the public key)
 *   fedsfda identity show FILE              print an identity file's public key
 *   fedsfda identity peers ENROLL --out F   the allow-list's public keys without tokens (for sites' --peers)
 *   fedsfda coordinator --identity FILE --enroll FILE --init-weights FILE [--config FILE] [--out DIR] [flags]
 * The coordinator runs its rounds, prints one line per round, and exits. With --out it leaves the run's artifacts
 * there (run-artifacts.ts): history.json, final-weights.fsws and, with a `statistics` config block, the pooled
 * source statistics and the non-IID report computed by masked-sum statistics rounds after the last round.
 * TLS: --tls-cert/--tls-key (or config `tls`); REST token: environment variable FEDSFDA_REST_TOKEN (>= 16 chars).
 */
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';
import { ConfigError, readConfigFile } from '../protocol/common/index.ts';
import { secureAggregationConfigSchema } from './secure-aggregation-schema.ts';
import { differentialPrivacyConfigSchema } from './strategies/dp-config.ts';
import { Enrollment } from '../protocol/enrollment.ts';
import { generateIdentity, loadIdentity, publicKeyToString, saveIdentity } from '../protocol/identity.ts';
import { decodeWeightSet } from '../protocol/tensor-codec.ts';
import { CoordinatorError } from './round-runner.ts';
import { runStatisticsSchema, writeRunArtifacts } from './run-artifacts.ts';
import { DEFAULT_MIN_AGGREGATED_FRACTION, startCoordinator, type CoordinatorHandle } from './start-coordinator.ts';
import { getLogger } from '../protocol/common/index.ts';
import { writeFileAtomic } from '../protocol/common/atomic-write.ts';
import { installProcessGuards } from './process-guard.ts';
import { MIN_SECURE_SITES } from './run-checks.ts';
import { createStrategy, strategySpecSchema, STRATEGY_NAMES } from './strategies/create-strategy.ts';

/** `--config FILE` schema; command-line flags override it. */
export const coordinatorConfigSchema = z
  .object({
    rounds: z.number().int().min(0).default(3),
    minSites: z.number().int().min(1).default(1),
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(8080),
    checkpointDir: z.string().optional(),
    strategy: strategySpecSchema.default({ name: 'fedavg' }),
    timeouts: z
      .object({
        handshakeMs: z.number().positive().optional(),
        waitForSitesMs: z.number().positive().optional(),
        fitMs: z.number().positive().optional(),
        evaluateMs: z.number().positive().optional(),
        finishMs: z.number().min(0).optional(),
      })
      .strict()
      .default({}),
    /** Secure aggregation (SecAgg+): the coordinator learns only sums. See SECURITY.md. */
    secureAggregation: secureAggregationConfigSchema.optional(),
    /** Client-level differential privacy (DP-FedAvg): clipping, noise, budget. See SECURITY.md. */
    differentialPrivacy: differentialPrivacyConfigSchema.optional(),
    /** Statistics rounds after the last round (with --out): pooled source statistics, non-IID report. */
    statistics: runStatisticsSchema.optional(),
    /** Serve HTTPS/WSS: PEM files of the certificate chain and its private key. */
    tls: z.object({ certFile: z.string().min(1), keyFile: z.string().min(1) }).strict().optional(),
    /** Fraction of rounds that must aggregate for the run to succeed (exit 0); at least one round always. */
    minAggregatedFraction: z.number().min(0).max(1).default(DEFAULT_MIN_AGGREGATED_FRACTION),
  })
  .strict();
export type CoordinatorConfig = z.infer<typeof coordinatorConfigSchema>;

export interface CoordinatorCommandOptions {
  identity: string;
  enroll: string;
  initWeights: string;
  config?: string;
  port?: string;
  host?: string;
  rounds?: string;
  minSites?: string;
  strategy?: string;
  checkpointDir?: string;
  historyOut?: string;
  out?: string;
  tlsCert?: string;
  tlsKey?: string;
  restTokenFile?: string;
  serveAfter?: boolean;
}

/** The dashboard's address; with a REST token, in the URL fragment (never sent to the server, see dashboard). */
export function dashboardUrl(url: string, restToken: string | undefined): string {
  return restToken ? `${url}/#token=${encodeURIComponent(restToken)}` : `${url}/`;
}

async function readRestToken(file: string): Promise<string> {
  let token: string;
  try {
    token = (await readFile(file, 'utf8')).trim();
  } catch (e) {
    throw new CoordinatorError('bad_options', `cannot read --rest-token-file ${file}: ${(e as Error).message}`);
  }
  if (token.length < 16) throw new CoordinatorError('bad_options', `--rest-token-file ${file}: the token must be at least 16 characters`);
  return token;
}

function int(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new CoordinatorError('bad_options', `${flag} must be an integer, got ${JSON.stringify(v)}`);
  return n;
}

/** Load files, merge config and flags, start the coordinator. The caller awaits `handle.done` and closes it. */
export async function startCoordinatorFromFiles(o: CoordinatorCommandOptions, log: (line: string) => void = console.log): Promise<CoordinatorHandle> {
  let cfg: CoordinatorConfig;
  try {
    cfg = o.config ? await readConfigFile(coordinatorConfigSchema, o.config) : coordinatorConfigSchema.parse({});
  } catch (e) {
    if (e instanceof ConfigError) throw new CoordinatorError('bad_options', `--config ${e.message}`);
    throw e;
  }
  if (o.strategy !== undefined && !(STRATEGY_NAMES as readonly string[]).includes(o.strategy)) {
    throw new CoordinatorError('bad_options', `--strategy must be one of ${STRATEGY_NAMES.join(', ')}`);
  }
  const identity = await loadIdentity(o.identity);
  const enrollment = await Enrollment.load(o.enroll);
  const possibleSites = enrollment.siteIds().length + enrollment.toJSON().tokens.length;
  if (cfg.statistics && possibleSites < MIN_SECURE_SITES) {
    throw new CoordinatorError(
      'bad_options',
      `the statistics config block needs at least ${MIN_SECURE_SITES} sites (sums over fewer reveal a site's own statistics); ${o.enroll} can admit only ${possibleSites}`,
    );
  }
  const initialWeights = decodeWeightSet(new Uint8Array(await readFile(o.initWeights)));
  const strategySpec = o.strategy ? { ...cfg.strategy, name: o.strategy as (typeof STRATEGY_NAMES)[number] } : cfg.strategy;
  const checkpointDir = o.checkpointDir ?? cfg.checkpointDir;
  if (o.out) await mkdir(o.out, { recursive: true });
  if (cfg.statistics && !o.out) throw new CoordinatorError('bad_options', 'the statistics config block needs --out DIR (where its files go)');
  const out = o.out;
  // Paths inside the config file are relative to it (a provisioned coordinator folder can be moved as a whole).
  const fromConfig = (f: string | undefined): string | undefined => (f === undefined || o.config === undefined ? f : resolve(dirname(o.config), f));
  const certFile = o.tlsCert ?? fromConfig(cfg.tls?.certFile);
  const keyFile = o.tlsKey ?? fromConfig(cfg.tls?.keyFile);
  if ((certFile === undefined) !== (keyFile === undefined)) throw new CoordinatorError('bad_options', 'TLS needs both a certificate (--tls-cert) and its key (--tls-key)');
  const readPemFile = async (f: string, what: string): Promise<string> => {
    try {
      return await readFile(f, 'utf8');
    } catch (e) {
      throw new CoordinatorError('bad_options', `cannot read TLS ${what} ${f}: ${(e as Error).message}`);
    }
  };
  const tls = certFile && keyFile ? { cert: await readPemFile(certFile, 'certificate'), key: await readPemFile(keyFile, 'key') } : undefined;
  // From a file or the environment, never from a flag value (flags show up in process listings).
  const restToken = o.restTokenFile !== undefined ? await readRestToken(o.restTokenFile) : process.env.FEDSFDA_REST_TOKEN;
  const handle = await startCoordinator({
    logger: getLogger().child({ component: 'coordinator' }),
    identity,
    enrollment,
    initialWeights,
    rounds: int('--rounds', o.rounds) ?? cfg.rounds,
    minSites: int('--min-sites', o.minSites) ?? cfg.minSites,
    host: o.host ?? cfg.host,
    port: int('--port', o.port) ?? cfg.port,
    strategy: createStrategy(strategySpec),
    enrollmentPath: o.enroll, // token enrollments are written back, so the spent token cannot be reused after a restart
    timeouts: cfg.timeouts,
    minAggregatedFraction: cfg.minAggregatedFraction,
    ...(checkpointDir ? { checkpointDir } : {}),
    ...(cfg.secureAggregation ? { secureAggregation: cfg.secureAggregation } : {}),
    ...(cfg.differentialPrivacy ? { differentialPrivacy: cfg.differentialPrivacy } : {}),
    ...(tls ? { tls } : {}),
    ...(restToken ? { restToken } : {}),
    ...(out
      ? {
          afterRounds: async (h: CoordinatorHandle) => {
            const r = await writeRunArtifacts(h, out, cfg.statistics);
            log(`wrote ${join(out, r.finalWeights)}`);
            if (r.sourceStats) log(`wrote ${join(out, r.sourceStats.file)} (pooled over ${r.sourceStats.sites.join(', ')})`);
            if (r.classHistogram) {
              log(`wrote ${join(out, r.classHistogram.file)} (non-IID heterogeneity ${r.classHistogram.heterogeneity.toExponential(3)} over ${r.classHistogram.sites.join(', ')})`);
            }
            for (const f of r.failures) log(`no ${f.artifact}: ${f.reason}`);
          },
        }
      : {}),
  });
  log(`coordinator listening on ${handle.url} (key ${handle.publicKey}); enrolled sites: ${enrollment.siteIds().join(', ') || '(tokens only)'}`);
  log(`dashboard: ${dashboardUrl(handle.url, restToken)}`);
  handle.events.on('siteConnected', (id) => log(`site ${id} connected`));
  handle.events.on('siteDisconnected', (id) => log(`site ${id} disconnected`));
  handle.events.on('siteFailed', (f) => log(`round ${f.round}: site ${f.siteId} failed ${f.stage} (${f.code}: ${f.reason})`));
  handle.events.on('roundCompleted', (r) => {
    const loss = r.meanTrainLoss === null ? 'n/a' : r.meanTrainLoss.toFixed(4);
    const ev = Object.entries(r.evalMetrics ?? {})
      .map(([k, v]) => `${k}=${v.toFixed(4)}`)
      .join(' ');
    log(`round ${r.round}: ${r.aggregated ? 'aggregated' : 'kept model'} from ${r.secureAggregation ? `${r.secureAggregation.included.length} site(s) (secure sum)` : `${r.sites.filter((s) => (s.numExamples ?? 0) > 0).length} site(s)`}, mean train loss ${loss}${ev ? `, ${ev}` : ''}`);
  });
  return handle;
}

export function registerCoordinatorCommands(program: Command): void {
  const identity = program.command('identity').description('Ed25519 identity files for sites and coordinators');
  identity
    .command('new')
    .description('create a new identity file (owner-only permissions) and print its public key')
    .requiredOption('--out <file>', 'where to write the identity JSON')
    .action(async (o: { out: string }) => {
      const id = generateIdentity();
      await saveIdentity(o.out, id);
      console.log(publicKeyToString(id.publicKey));
    });
  identity
    .command('show <file>')
    .description('print the public key of an identity file')
    .action(async (file: string) => {
      console.log(publicKeyToString((await loadIdentity(file)).publicKey));
    });
  identity
    .command('peers <enroll-file>')
    .description("the allow-list's public keys without enrollment tokens: the file every site gets for `fedsfda site --peers`")
    .requiredOption('--out <file>', 'where to write the peers file')
    .action(async (file: string, o: { out: string }) => {
      const e = await Enrollment.load(file);
      if (e.siteIds().length === 0) throw new CoordinatorError('bad_options', `${file} lists no sites with keys yet (enroll them first)`);
      await writeFileAtomic(o.out, JSON.stringify({ v: 1, sites: e.toJSON().sites }, null, 2) + '\n');
      console.log(`${e.siteIds().length} site key(s) -> ${o.out}`);
    });

  program
    .command('coordinator')
    .description('run the federated coordinator (express + socket.io on one port) until all rounds are done')
    .requiredOption('--identity <file>', 'coordinator identity file (fedsfda identity new)')
    .requiredOption('--enroll <file>', 'enrollment JSON: {"v":1,"sites":{"site-id":"<base64 public key>"},"tokens":[{"token":"..."}]}')
    .requiredOption('--init-weights <file>', 'initial global model as an encoded WeightSet (protocol/tensor-codec.ts)')
    .option('--config <file>', 'JSON config (rounds, minSites, host, port, checkpointDir, strategy, timeouts)')
    .option('--port <n>', 'port (0 = ephemeral)')
    .option('--host <addr>', 'bind address')
    .option('--rounds <n>', 'number of rounds')
    .option('--min-sites <n>', 'sites needed to start a round and to aggregate')
    .option('--strategy <name>', `one of ${STRATEGY_NAMES.join(', ')}`)
    .option('--checkpoint-dir <dir>', 'checkpoint directory (resumed if it holds a checkpoint)')
    .option('--history-out <file>', 'write the round history JSON here at the end')
    .option('--out <dir>', 'run folder: history.json, final-weights.fsws, and the statistics configured under "statistics"')
    .option('--tls-cert <file>', 'serve HTTPS/WSS with this PEM certificate chain (with --tls-key)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--rest-token-file <file>', 'REST/dashboard bearer token from this (owner-only) file instead of FEDSFDA_REST_TOKEN')
    .option('--serve-after', 'keep serving the REST API and dashboard after the last round, until SIGINT/SIGTERM')
    .action(async (o: CoordinatorCommandOptions) => {
      const logger = getLogger().child({ component: 'coordinator' });
      const uninstallGuards = installProcessGuards(logger);
      const handle = await startCoordinatorFromFiles(o);
      let stoppedBy: string | null = null;
      let stopRequested: () => void = () => {};
      const stopped = new Promise<void>((r) => (stopRequested = r));
      const stop = (signal: string): void => {
        stoppedBy = signal;
        stopRequested();
        logger.info({ code: 'stopping', signal }, `stopping on ${signal}`);
        void handle.close();
      };
      const onInt = (): void => stop('SIGINT');
      const onTerm = (): void => stop('SIGTERM');
      process.once('SIGINT', onInt);
      process.once('SIGTERM', onTerm);
      try {
        const history = await handle.done.catch((e: unknown) => {
          if (stoppedBy !== null) return null; // a deliberate stop: the checkpoint holds the run, exit 0
          throw e;
        });
        if (history === null) {
          console.log(`stopped by ${stoppedBy} after round ${handle.history().length}; restart with the same checkpoint directory to resume`);
          return;
        }
        if (o.historyOut) await writeFileAtomic(o.historyOut, JSON.stringify(history, null, 2));
        if (o.out) await writeFileAtomic(join(o.out, 'history.json'), JSON.stringify(history, null, 2));
        const outcome = handle.outcome();
        if (outcome && !outcome.ok) {
          console.error(`run failed: ${outcome.reason}`);
          process.exitCode = 1;
          return;
        }
        console.log(`finished ${history.length} round(s)`);
        if (o.serveAfter) {
          console.log(`still serving ${handle.url} (--serve-after); stop with Ctrl-C or SIGTERM`);
          await stopped;
        }
      } finally {
        process.off('SIGINT', onInt);
        process.off('SIGTERM', onTerm);
        await handle.close();
        uninstallGuards();
      }
    });
}
