/**
 * Child process: the coordinator of a simulated federation. Never imports tfjs (house rule): the initial
 * model arrives as an encoded WeightSet file. Reports progress as typed events (child-events.ts) on stdout.
 * Stopped on purpose (SIGTERM/SIGINT, or the parent gone) it closes its port, writes the history so far and exits 0.
 * Usage: coordinator-process.ts JOB_FILE
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createStrategy, installProcessGuards, startCoordinator, writeRunArtifacts, type CoordinatorHandle, type Strategy } from '../../coordinator/index.ts';
import { getLogger, writeFileAtomic } from '../../protocol/common/index.ts';
import { decodeWeightSet, Enrollment, loadIdentity } from '../../protocol/index.ts';
import type { StatisticsDpConfig } from '../../protocol/privacy/index.ts';
import { loadScenarioFile, parseFederatedScenario, type FederatedScenario } from '../scenario.ts';
import { coordinatorEventSchema, emitChildEvent, type CoordinatorEvent } from './child-events.ts';
import { onStopRequest } from './child-lifecycle.ts';
import { readJob } from './job.ts';

const emit = (e: CoordinatorEvent): void => emitChildEvent(coordinatorEventSchema, e);

/** The scenario's strategy through the coordinator's own factory (same spec as `fedsfda coordinator --config`). */
function makeStrategy(s: FederatedScenario): Strategy {
  const t = s.training;
  return createStrategy({
    name: t.strategy,
    localEpochs: t.localEpochs,
    lr: t.lr,
    minFitResults: t.minSites ?? s.sites.length,
    minEvaluateResults: t.minSites ?? s.sites.length,
    seed: s.seed,
    // Round 0: the sites score the untrained model (the summary's untrained Dice).
    evaluateInitialModel: true,
    ...(t.strategy === 'fedprox' ? { proximalMu: t.proximalMu } : {}),
  });
}

/**
 * A public upper bound on the source pixels of the whole federation: statistics are scaled by its inverse so
 * that counts stay <= 1 and moments stay small enough for secure aggregation's clipping range.
 */
function sourcePixelBound(s: FederatedScenario): number {
  const slicesPerSite = s.sites.map((site) => (site.numCases !== undefined ? site.numCases * s.data.slicesPerCase : 4096));
  return s.data.size * s.data.size * slicesPerSite.reduce((a, b) => a + b, 0);
}

/** The scenario's DP statistics settings, with unitPixels defaulting to the phantom's pixels per case (or slice). */
function statisticsPrivacy(s: FederatedScenario): { differentialPrivacy?: StatisticsDpConfig } {
  const dp = s.statistics?.differentialPrivacy;
  if (!dp) return {};
  const perSlice = s.data.size * s.data.size;
  return { differentialPrivacy: { ...dp, unitPixels: dp.unitPixels ?? (dp.unit === 'slice' ? perSlice : perSlice * s.data.slicesPerCase) } };
}

async function start(jobFile: string): Promise<{ coord: CoordinatorHandle; outDir: string }> {
  const job = await readJob(jobFile);
  const { raw, text } = await loadScenarioFile(job.scenarioFile);
  const scenario = parseFederatedScenario(job.scenarioFile, raw, text);
  const logger = getLogger().child({ component: 'coordinator' });
  installProcessGuards(logger);
  const coord = await startCoordinator({
    logger,
    identity: await loadIdentity(job.coordinatorIdentityFile),
    enrollment: await Enrollment.load(job.enrollmentFile),
    initialWeights: decodeWeightSet(new Uint8Array(await readFile(job.initialWeightsFile))),
    rounds: scenario.training.rounds,
    minSites: scenario.training.minSites ?? scenario.sites.length,
    strategy: makeStrategy(scenario),
    host: '127.0.0.1',
    port: 0,
    timeouts: { waitForSitesMs: scenario.training.stageTimeoutMs, fitMs: scenario.training.stageTimeoutMs, evaluateMs: scenario.training.stageTimeoutMs },
    checkpointDir: join(job.outDir, 'checkpoints'),
    ...(scenario.training.secureAggregation ? { secureAggregation: scenario.training.secureAggregation } : {}),
    ...(scenario.training.differentialPrivacy ? { differentialPrivacy: scenario.training.differentialPrivacy } : {}),
    // After the last round: the final model, the pooled source statistics package for source-free adaptation at
    // a new hospital, and the non-IID report, each statistic computed by every site on its own data and summed
    // (masked, under secure aggregation) — the same artifacts as `fedsfda coordinator --out`.
    afterRounds: async (handle) => {
      const report = await writeRunArtifacts(handle, job.outDir, { pixelBound: sourcePixelBound(scenario), confidence: scenario.statistics?.confidence ?? 0.97, ...statisticsPrivacy(scenario) });
      if (report.sourceStats) emit({ event: 'sourceStats', sites: report.sourceStats.sites });
      if (report.classHistogram) emit({ event: 'classHistogram', sites: report.classHistogram.sites, heterogeneity: report.classHistogram.heterogeneity });
      for (const f of report.failures) emit({ event: f.artifact === 'source-stats' ? 'sourceStatsFailed' : 'classHistogramFailed', message: f.reason });
    },
  });
  coord.events.on('roundStarted', (round: number, sites: string[]) => emit({ event: 'roundStarted', round, sites }));
  coord.events.on('siteFailed', (failure) => emit({ event: 'siteFailed', failure }));
  coord.events.on('roundCompleted', (record) => emit({ event: 'roundCompleted', record }));
  emit({ event: 'listening', url: coord.url, publicKey: coord.publicKey });
  return { coord, outDir: job.outDir };
}

async function main(): Promise<number> {
  const { coord, outDir } = await start(process.argv[2]);
  let stopped = false;
  const removeStop = onStopRequest((reason) => {
    stopped = true;
    getLogger().info({ code: 'STOP_REQUESTED', reason }, 'coordinator: stopping on request');
    void coord.close();
  });
  try {
    const history = await coord.done.catch((err: unknown) => {
      if (stopped) return coord.history();
      throw err;
    });
    await writeFileAtomic(join(outDir, 'history.json'), JSON.stringify(history, null, 2));
    if (stopped) {
      emit({ event: 'stopped', rounds: history.length });
      return 0;
    }
    const outcome = coord.outcome();
    // A run that did not train is a failure, whatever else it wrote (the reason is in run.json and on stderr).
    if (outcome && !outcome.ok) throw new Error(`run failed: ${outcome.reason}`);
    emit({ event: 'finished', rounds: history.filter((r) => r.round > 0).length, peakRssBytes: process.resourceUsage().maxRSS * 1024 });
    return 0;
  } finally {
    removeStop();
    await coord.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    const code = (err as { code?: unknown }).code;
    emit({ event: 'error', message: err instanceof Error ? err.message : String(err), ...(typeof code === 'string' ? { code } : {}) });
    process.exit(1);
  },
);
