/**
 * The run folder of a simulation before any process starts: previous results removed, the scenario's datasets built
 * if needed, one identity per site and for the coordinator, the allow-list, the seeded initial model, and the job
 * file that tells every child process where all of it is (so each process can be re-run by hand).
 */
import { access, mkdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { checkStatisticsBudget, FedAvg, PRIVACY_FILE, withDifferentialPrivacy } from '../../coordinator/index.ts';
import { encodeWeightSet, Enrollment, generateIdentity, publicKeyToString, saveIdentity } from '../../protocol/index.ts';
import { initEngine } from '../../site-agent/engine/index.ts';
import { createUNet } from '../../site-agent/model/index.ts';
import { buildMricronDatasets } from '../mricron/index.ts';
import type { FederatedScenario } from '../scenario.ts';
import type { SimulationJob } from './job.ts';

/** What a previous run leaves in the folder; a simulation is a fresh run (a checkpoint would otherwise be resumed). */
const PREVIOUS_RESULTS = ['checkpoints', 'keys', 'model', 'history.json', 'summary.json', 'report.html', 'source-stats.json', 'class-histogram.json', 'final-weights.fsws', 'run.json', 'initial-weights.bin', 'job.json', PRIVACY_FILE];

/** Builds the scenario's dataset folders (e.g. from mricron-data) unless a previous run already did. */
async function prepareDatasets(s: FederatedScenario, log: (line: string) => void): Promise<void> {
  const p = s.prepare;
  if (!p) return;
  const exists = await access(join(p.out, 'site-1', 'dataset.json')).then(() => true, () => false);
  if (exists) {
    log(`using the datasets already built in ${p.out}`);
    return;
  }
  log(`building ${p.sites} ${p.kind} site datasets in ${p.out}`);
  const { kind: _kind, ...opts } = p;
  await buildMricronDatasets(opts);
}

/** Identities and the coordinator's allow-list: the same files a real deployment would hold. */
async function writeIdentities(s: FederatedScenario, keysDir: string): Promise<Pick<SimulationJob, 'coordinatorIdentityFile' | 'coordinatorPublicKey' | 'enrollmentFile' | 'sites'>> {
  const coordinatorIdentity = generateIdentity();
  const coordinatorIdentityFile = join(keysDir, 'coordinator.json');
  await saveIdentity(coordinatorIdentityFile, coordinatorIdentity);
  const enrollment = new Enrollment();
  const sites: SimulationJob['sites'] = [];
  for (const [index, site] of s.sites.entries()) {
    const id = generateIdentity();
    const identityFile = join(keysDir, `${site.id}.json`);
    await saveIdentity(identityFile, id);
    enrollment.allow(site.id, id.publicKey);
    sites.push({ id: site.id, identityFile, index });
  }
  const enrollmentFile = join(keysDir, 'enrollment.json');
  await writeFile(enrollmentFile, JSON.stringify(enrollment.toJSON(), null, 2));
  return { coordinatorIdentityFile, coordinatorPublicKey: publicKeyToString(coordinatorIdentity.publicKey), enrollmentFile, sites };
}

export interface PreparedRun {
  readonly job: SimulationJob;
  readonly jobFile: string;
  /** The compute backend the initial model was built on (the sites report theirs). */
  readonly backend: string;
}

/** Thrown by prepareRunFolder when its AbortSignal fired (Ctrl-C while the datasets, keys or model were made). */
export class PreparationInterrupted extends Error {
  override readonly name = 'PreparationInterrupted';
}

/**
 * Prepares `outDir` for a run of scenario `s` (see the file comment). An aborted `signal` stops it between steps
 * (PreparationInterrupted): no job file is written and no process is started.
 */
export async function prepareRunFolder(scenarioFile: string, s: FederatedScenario, outDir: string, log: (line: string) => void, signal?: AbortSignal): Promise<PreparedRun> {
  const checkpoint = (): void => {
    if (signal?.aborted) throw new PreparationInterrupted(`interrupted while preparing ${outDir}`);
  };
  // A DP scenario over its budget (or with impossible DP settings) is refused here, before any process starts.
  const training = s.training.differentialPrivacy ? withDifferentialPrivacy(new FedAvg(), s.training.differentialPrivacy, { rounds: s.training.rounds, enrolledSites: s.sites.length }) : null;
  // The same for the DP statistics: planned training rounds and statistics releases against maxTotalEpsilon.
  if (s.statistics?.differentialPrivacy) checkStatisticsBudget(training?.plannedEvents() ?? [], { pixelBound: 1, differentialPrivacy: s.statistics.differentialPrivacy });
  for (const f of PREVIOUS_RESULTS) await rm(join(outDir, f), { recursive: true, force: true });
  const keysDir = join(outDir, 'keys');
  await mkdir(keysDir, { recursive: true });
  checkpoint();
  await prepareDatasets(s, log);
  checkpoint();
  const identities = await writeIdentities(s, keysDir);
  // The initial global model: seeded, so a scenario reproduces.
  const engine = await initEngine();
  checkpoint();
  const unet = createUNet({ inChannels: s.data.channels, numClasses: s.data.numClasses, baseChannels: s.model.baseChannels, depth: s.model.depth, ...(s.model.normalization === 'group' ? { normalization: 'group' as const } : {}) }, s.seed);
  const initialWeightsFile = join(outDir, 'initial-weights.bin');
  await writeFile(initialWeightsFile, encodeWeightSet(unet.getWeights()));
  unet.dispose();
  const job: SimulationJob = { scenarioFile: resolve(scenarioFile), outDir, ...identities, initialWeightsFile, sitesPerProcess: s.sitesPerProcess };
  const jobFile = join(outDir, 'job.json');
  await writeFile(jobFile, JSON.stringify(job, null, 2));
  return { job, jobFile, backend: engine.backend };
}
