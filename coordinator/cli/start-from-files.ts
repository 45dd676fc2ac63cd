/**
 * `fedsfda coordinator`'s start: load the identity, the allow-list, the initial model and the config, merge the
 * command-line flags over the config, refuse what cannot work, start the coordinator, and print progress lines.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { decodeWeightSet, Enrollment, loadIdentity } from '../../protocol/index.ts';
import { getLogger } from '../../protocol/common/index.ts';
import { CoordinatorError } from '../errors/index.ts';
import { MIN_SECURE_SITES } from '../rounds/index.ts';
import { startCoordinator, type CoordinatorHandle } from '../index.ts';
import { checkStatisticsBudget, writeRunArtifacts } from '../storage/index.ts';
import { createStrategy, FedAvg, STRATEGY_NAMES, withDifferentialPrivacy, type StrategyName } from '../strategies/index.ts';
import { loadCoordinatorConfig, type CoordinatorConfig } from './coordinator-config.ts';

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
  maxSiteBytesPerRound?: string;
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

async function readTls(o: CoordinatorCommandOptions, cfg: CoordinatorConfig): Promise<{ cert: string; key: string } | undefined> {
  // Paths inside the config file are relative to it (a provisioned coordinator folder can be moved as a whole).
  const fromConfig = (f: string | undefined): string | undefined => (f === undefined || o.config === undefined ? f : resolve(dirname(o.config), f));
  const certFile = o.tlsCert ?? fromConfig(cfg.tls?.certFile);
  const keyFile = o.tlsKey ?? fromConfig(cfg.tls?.keyFile);
  if ((certFile === undefined) !== (keyFile === undefined)) throw new CoordinatorError('bad_options', 'TLS needs both a certificate (--tls-cert) and its key (--tls-key)');
  if (!certFile || !keyFile) return undefined;
  const read = async (f: string, what: string): Promise<string> => {
    try {
      return await readFile(f, 'utf8');
    } catch (e) {
      throw new CoordinatorError('bad_options', `cannot read TLS ${what} ${f}: ${(e as Error).message}`);
    }
  };
  return { cert: await read(certFile, 'certificate'), key: await read(keyFile, 'key') };
}

/** The run folder's artifacts after the last round, with one line per file written or missing. */
function artifactsHook(out: string, cfg: CoordinatorConfig, log: (line: string) => void): (h: CoordinatorHandle) => Promise<void> {
  return async (h) => {
    const r = await writeRunArtifacts(h, out, cfg.statistics);
    log(`wrote ${join(out, r.finalWeights)}`);
    if (r.sourceStats) log(`wrote ${join(out, r.sourceStats.file)} (pooled over ${r.sourceStats.sites.join(', ')})`);
    if (r.classHistogram) {
      log(`wrote ${join(out, r.classHistogram.file)} (non-IID heterogeneity ${r.classHistogram.heterogeneity.toExponential(3)} over ${r.classHistogram.sites.join(', ')})`);
    }
    for (const f of r.failures) log(`no ${f.artifact}: ${f.reason}`);
  };
}

function printProgress(handle: CoordinatorHandle, log: (line: string) => void): void {
  handle.events.on('siteConnected', (id) => log(`site ${id} connected`));
  handle.events.on('siteDisconnected', (id) => log(`site ${id} disconnected`));
  handle.events.on('siteFailed', (f) => log(`round ${f.round}: site ${f.siteId} failed ${f.stage} (${f.code}: ${f.reason})`));
  handle.events.on('roundCompleted', (r) => {
    const loss = r.meanTrainLoss === null ? 'n/a' : r.meanTrainLoss.toFixed(4);
    const ev = Object.entries(r.evalMetrics ?? {})
      .map(([k, v]) => `${k}=${v.toFixed(4)}`)
      .join(' ');
    const from = r.secureAggregation ? `${r.secureAggregation.included.length} site(s) (secure sum)` : `${r.sites.filter((s) => (s.numExamples ?? 0) > 0).length} site(s)`;
    log(`round ${r.round}: ${r.aggregated ? 'aggregated' : 'kept model'} from ${from}, mean train loss ${loss}${ev ? `, ${ev}` : ''}`);
  });
}

/** Load files, merge config and flags, start the coordinator. The caller awaits `handle.done` and closes it. */
export async function startCoordinatorFromFiles(o: CoordinatorCommandOptions, log: (line: string) => void = console.log): Promise<CoordinatorHandle> {
  const cfg = await loadCoordinatorConfig(o.config);
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
  if (cfg.statistics && !o.out) throw new CoordinatorError('bad_options', 'the statistics config block needs --out DIR (where its files go)');
  // (dp) Planned training rounds and DP statistics releases over statistics.differentialPrivacy.maxTotalEpsilon:
  // refused before the coordinator starts (PrivacyError 'budget-exceeded'), as `fedsfda simulate` does.
  if (cfg.statistics?.differentialPrivacy) {
    const rounds = int('--rounds', o.rounds) ?? cfg.rounds;
    const enrolledSites = Math.max(1, enrollment.siteIds().length);
    const training = cfg.differentialPrivacy ? withDifferentialPrivacy(new FedAvg(), cfg.differentialPrivacy, { rounds, enrolledSites }).plannedEvents() : [];
    checkStatisticsBudget(training, cfg.statistics);
  }
  const initialWeights = decodeWeightSet(new Uint8Array(await readFile(o.initWeights)));
  const minSites = int('--min-sites', o.minSites) ?? cfg.minSites;
  // The strategy decides the quorum: unless the config says otherwise it needs `minSites` results to aggregate.
  const strategySpec = { minFitResults: minSites, ...cfg.strategy, ...(o.strategy ? { name: o.strategy as StrategyName } : {}) };
  const checkpointDir = o.checkpointDir ?? cfg.checkpointDir;
  if (o.out) await mkdir(o.out, { recursive: true });
  const tls = await readTls(o, cfg);
  // From a file or the environment, never from a flag value (flags show up in process listings).
  const restToken = o.restTokenFile !== undefined ? await readRestToken(o.restTokenFile) : process.env.FEDSFDA_REST_TOKEN;
  const handle = await startCoordinator({
    logger: getLogger().child({ component: 'coordinator' }),
    identity,
    enrollment,
    initialWeights,
    rounds: int('--rounds', o.rounds) ?? cfg.rounds,
    minSites,
    host: o.host ?? cfg.host,
    port: int('--port', o.port) ?? cfg.port,
    strategy: createStrategy(strategySpec),
    enrollmentPath: o.enroll, // token enrollments are written back, so the spent token cannot be reused after a restart
    timeouts: cfg.timeouts,
    limits: { ...cfg.limits, ...(o.maxSiteBytesPerRound !== undefined ? { maxSiteBytesPerRound: int('--max-site-bytes-per-round', o.maxSiteBytesPerRound) } : {}) },
    minAggregatedFraction: cfg.minAggregatedFraction,
    ...(checkpointDir ? { checkpointDir } : {}),
    ...(cfg.secureAggregation ? { secureAggregation: cfg.secureAggregation } : {}),
    ...(cfg.differentialPrivacy ? { differentialPrivacy: cfg.differentialPrivacy } : {}),
    ...(tls ? { tls } : {}),
    ...(restToken ? { restToken } : {}),
    ...(o.out ? { afterRounds: artifactsHook(o.out, cfg, log) } : {}),
  });
  log(`coordinator listening on ${handle.url} (key ${handle.publicKey}); enrolled sites: ${enrollment.siteIds().join(', ') || '(tokens only)'}`);
  log(`dashboard: ${dashboardUrl(handle.url, restToken)}`);
  printProgress(handle, log);
  return handle;
}
