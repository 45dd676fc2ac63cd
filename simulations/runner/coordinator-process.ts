/**
 * Child process: the coordinator of a simulated federation. Never imports tfjs (house rule): the initial
 * model arrives as an encoded WeightSet file. Reports progress as JSON event lines on stdout.
 * Usage: coordinator-process.ts JOB_FILE
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { installProcessGuards, startCoordinator, writeRunArtifacts, type Strategy } from '../../coordinator/index.ts';
import { getLogger } from '../../protocol/common/index.ts';
import { writeFileAtomic } from '../../protocol/common/atomic-write.ts';
import { createStrategy } from '../../coordinator/strategies/create-strategy.ts';
import { Enrollment } from '../../protocol/enrollment.ts';
import { loadIdentity } from '../../protocol/identity.ts';
import { decodeWeightSet } from '../../protocol/tensor-codec.ts';
import { loadScenarioFile, parseFederatedScenario, type FederatedScenario } from '../scenario.ts';
import { readJob } from './job.ts';
import { emitEvent } from './spawn-ts.ts';

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

async function main(): Promise<void> {
  const job = await readJob(process.argv[2]);
  const { raw } = await loadScenarioFile(job.scenarioFile);
  const scenario = parseFederatedScenario(job.scenarioFile, raw);
  const identity = await loadIdentity(job.coordinatorIdentityFile);
  const enrollment = await Enrollment.load(job.enrollmentFile);
  const initialWeights = decodeWeightSet(new Uint8Array(await readFile(job.initialWeightsFile)));

  const logger = getLogger().child({ component: 'coordinator' });
  installProcessGuards(logger);
  const coord = await startCoordinator({
    logger,
    identity,
    enrollment,
    initialWeights,
    rounds: scenario.training.rounds,
    minSites: scenario.training.minSites ?? scenario.sites.length,
    strategy: makeStrategy(scenario),
    host: '127.0.0.1',
    port: 0,
    timeouts: {
      waitForSitesMs: scenario.training.stageTimeoutMs,
      fitMs: scenario.training.stageTimeoutMs,
      evaluateMs: scenario.training.stageTimeoutMs,
    },
    checkpointDir: join(job.outDir, 'checkpoints'),
    ...(scenario.training.secureAggregation ? { secureAggregation: scenario.training.secureAggregation } : {}),
    ...(scenario.training.differentialPrivacy ? { differentialPrivacy: scenario.training.differentialPrivacy } : {}),
    // After the last round: the final model, the pooled source statistics package for source-free adaptation at
    // a new hospital, and the non-IID report, each statistic computed by every site on its own data and summed
    // (masked, under secure aggregation) — the same artifacts as `fedsfda coordinator --out`.
    afterRounds: async (handle) => {
      const report = await writeRunArtifacts(handle, job.outDir, { pixelBound: sourcePixelBound(scenario), confidence: 0.97 });
      if (report.sourceStats) emitEvent('sourceStats', { sites: report.sourceStats.sites });
      if (report.classHistogram) emitEvent('classHistogram', { sites: report.classHistogram.sites, heterogeneity: report.classHistogram.heterogeneity });
      for (const f of report.failures) {
        emitEvent(f.artifact === 'source-stats' ? 'sourceStatsFailed' : 'classHistogramFailed', { message: f.reason });
      }
    },
  });
  coord.events.on('roundStarted', (round: number, sites: string[]) => emitEvent('roundStarted', { round, sites }));
  coord.events.on('siteFailed', (f: unknown) => emitEvent('siteFailed', { failure: f }));
  coord.events.on('roundCompleted', (record: unknown) => emitEvent('roundCompleted', { record }));
  emitEvent('listening', { url: coord.url, publicKey: coord.publicKey });

  try {
    const history = await coord.done;
    await writeFileAtomic(join(job.outDir, 'history.json'), JSON.stringify(history, null, 2));
    const outcome = coord.outcome();
    // A run that did not train is a failure, whatever else it wrote (the reason is in run.json and on stderr).
    if (outcome && !outcome.ok) throw new Error(`run failed: ${outcome.reason}`);
    emitEvent('finished', { rounds: history.filter((r) => r.round > 0).length });
  } finally {
    await coord.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    emitEvent('error', { message: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  },
);
