/**
 * Child process: the coordinator of a simulated federation. Never imports tfjs (house rule): the initial
 * model arrives as an encoded WeightSet file. Reports progress as JSON event lines on stdout.
 * Usage: coordinator-process.ts JOB_FILE
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startCoordinator, type Strategy } from '../../coordinator/index.ts';
import { createStrategy } from '../../coordinator/strategies/create-strategy.ts';
import { Enrollment } from '../../protocol/enrollment.ts';
import { loadIdentity } from '../../protocol/identity.ts';
import { SOURCE_STATS_REQUEST, sourceStatsFromVectors } from '../../protocol/source-stats-vectors.ts';
import { CLASS_HISTOGRAM_REQUEST, classHistogramFromVectors } from '../../protocol/class-histogram-vectors.ts';
import { decodeWeightSet, encodeWeightSet } from '../../protocol/tensor-codec.ts';
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

/** The numbers of classes and latent channels, read off the model's head ([1, 1, latent, classes]). */
function headShape(weights: ReturnType<typeof decodeWeightSet>): { latentDim: number; numClasses: number } {
  const head = weights.find((t) => t.name === 'head.w');
  if (!head || head.shape.length !== 4) throw new Error('the global model has no head.w of rank 4');
  return { latentDim: head.shape[2], numClasses: head.shape[3] };
}

async function main(): Promise<void> {
  const job = await readJob(process.argv[2]);
  const { raw } = await loadScenarioFile(job.scenarioFile);
  const scenario = parseFederatedScenario(job.scenarioFile, raw);
  const identity = await loadIdentity(job.coordinatorIdentityFile);
  const enrollment = await Enrollment.load(job.enrollmentFile);
  const initialWeights = decodeWeightSet(new Uint8Array(await readFile(job.initialWeightsFile)));

  const coord = await startCoordinator({
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
    // After the last round: the final model, and the pooled source statistics package for source-free adaptation
    // at a new hospital, computed by every site on its own data and summed (masked, under secure aggregation).
    afterRounds: async (handle) => {
      const final = handle.weights();
      await writeFile(join(job.outDir, 'final-weights.fsws'), encodeWeightSet(final));
      const scale = 1 / sourcePixelBound(scenario);
      const confidence = 0.97;
      try {
        const { sums, included } = await handle.runStatisticsRound({ name: SOURCE_STATS_REQUEST, config: { scale, confidence }, clip: 1e4 });
        const stats = sourceStatsFromVectors(sums, { ...headShape(final), confidence, numSites: included.length, scale });
        await writeFile(join(job.outDir, 'source-stats.json'), JSON.stringify(stats));
        emitEvent('sourceStats', { sites: included });
      } catch (err) {
        emitEvent('sourceStatsFailed', { message: err instanceof Error ? err.message : String(err) });
      }
      // The non-IID report: label-distribution moments over sites from masked sums (no site's histogram revealed).
      try {
        const { sums, included } = await handle.runStatisticsRound({ name: CLASS_HISTOGRAM_REQUEST, config: { scale }, clip: 1 });
        const report = classHistogramFromVectors(sums, { numSites: included.length, scale });
        await writeFile(join(job.outDir, 'class-histogram.json'), JSON.stringify({ ...report, sites: included }, null, 2));
        emitEvent('classHistogram', { sites: included, heterogeneity: report.heterogeneity });
      } catch (err) {
        emitEvent('classHistogramFailed', { message: err instanceof Error ? err.message : String(err) });
      }
    },
  });
  coord.events.on('roundStarted', (round: number, sites: string[]) => emitEvent('roundStarted', { round, sites }));
  coord.events.on('siteFailed', (f: unknown) => emitEvent('siteFailed', { failure: f }));
  coord.events.on('roundCompleted', (record: unknown) => emitEvent('roundCompleted', { record }));
  emitEvent('listening', { url: coord.url, publicKey: coord.publicKey });

  try {
    const history = await coord.done;
    await writeFile(join(job.outDir, 'history.json'), JSON.stringify(history, null, 2));
    emitEvent('finished', { rounds: history.length });
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
