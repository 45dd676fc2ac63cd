/**
 * Child process: the coordinator of a simulated federation. Never imports tfjs (house rule): the initial
 * model arrives as an encoded WeightSet file. Reports progress as JSON event lines on stdout.
 * Usage: coordinator-process.ts JOB_FILE
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FedAvg, FedBN, FedProx, startCoordinator, type Strategy } from '../../coordinator/index.ts';
import { Enrollment } from '../../protocol/enrollment.ts';
import { loadIdentity } from '../../protocol/identity.ts';
import { decodeWeightSet } from '../../protocol/tensor-codec.ts';
import { loadScenarioFile, parseFederatedScenario, type FederatedScenario } from '../scenario.ts';
import { readJob } from './job.ts';
import { emitEvent } from './spawn-ts.ts';

function makeStrategy(s: FederatedScenario): Strategy {
  const t = s.training;
  const common = {
    localEpochs: t.localEpochs,
    lr: t.lr,
    minFitResults: t.minSites ?? s.sites.length,
    minEvaluateResults: t.minSites ?? s.sites.length,
    seed: s.seed,
  };
  switch (t.strategy) {
    case 'fedavg':
      return new FedAvg(common);
    case 'fedprox':
      return new FedProx({ ...common, proximalMu: t.proximalMu });
    case 'fedbn':
      return new FedBN(common);
    default: {
      const never: never = t.strategy;
      throw new Error(`unknown strategy ${String(never)}`);
    }
  }
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
