/**
 * `fedsfda simulate` for a federated scenario: one coordinator process and one process per site, talking
 * socket.io over loopback with encrypted sessions, exactly as separate hospitals would.
 */
import { classHistogramReportInClear, type ClassHistogramReport } from '../../protocol/class-histogram-vectors.ts';
import { access, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { EVAL_METRIC, metricValue, type RoundRecord } from '../../protocol/contracts/index.ts';
import { PRIVACY_FILE } from '../../coordinator/index.ts';
import { FedAvg, withDifferentialPrivacy, type PrivacyStatus } from '../../coordinator/strategies/index.ts';
import { Enrollment } from '../../protocol/enrollment.ts';
import { generateIdentity, publicKeyToString, saveIdentity } from '../../protocol/identity.ts';
import { decodeWeightSet, encodeWeightSet } from '../../protocol/tensor-codec.ts';
import { initEngine } from '../../site-agent/engine/index.ts';
import { createUNet, saveModel } from '../../site-agent/model/index.ts';
import { buildMricronDatasets } from '../mricron/index.ts';
import type { FederatedScenario } from '../scenario.ts';
import type { SimulationJob } from './job.ts';
import { spawnTs, type ChildEvent, type TsChild } from './spawn-ts.ts';
import { buildSummary, type SimulationSummary } from './summary.ts';

export class SimulationError extends Error {
  override readonly name = 'SimulationError';
  constructor(
    readonly code: 'child-failed' | 'timeout',
    message: string,
  ) {
    super(message);
  }
}

export interface RunFederatedOptions {
  readonly scenarioFile: string;
  readonly scenario: FederatedScenario;
  readonly outDir: string;
  /** Progress lines for a human (the CLI prints them). */
  readonly onLog?: (line: string) => void;
  /** Hard limit for the whole run (default: rounds x stage timeout + 2 min). */
  readonly timeoutMs?: number;
}

/** Builds the scenario's dataset folders (e.g. from mricron-data) unless a previous run already did. */
async function prepareDatasets(s: FederatedScenario, log: (line: string) => void): Promise<void> {
  const p = s.prepare;
  if (!p) return;
  const exists = await access(join(p.out, 'site-1', 'dataset.json')).then(
    () => true,
    () => false,
  );
  if (exists) {
    log(`using the datasets already built in ${p.out}`);
    return;
  }
  log(`building ${p.sites} ${p.kind} site datasets in ${p.out}`);
  const { kind: _kind, ...opts } = p;
  await buildMricronDatasets(opts);
}

/**
 * The final global model as a model folder (`fedsfda adapt --model`), next to the pooled source statistics
 * (`--source-stats`) that the coordinator wrote: what a new hospital needs for source-free adaptation.
 */
async function writeArtifacts(outDir: string, s: FederatedScenario): Promise<{ model: string | null; sourceStats: string | null }> {
  const exists = (f: string): Promise<boolean> => access(f).then(() => true, () => false);
  let model: string | null = null;
  if (await exists(join(outDir, 'final-weights.fsws'))) {
    const unet = createUNet({ inChannels: 1, numClasses: s.data.numClasses, baseChannels: s.model.baseChannels, depth: s.model.depth }, s.seed);
    try {
      unet.setWeights(decodeWeightSet(new Uint8Array(await readFile(join(outDir, 'final-weights.fsws')))));
      await saveModel(unet, join(outDir, 'model'));
      model = 'model';
    } finally {
      unet.dispose();
    }
  }
  const sourceStats = (await exists(join(outDir, 'source-stats.json'))) ? 'source-stats.json' : null;
  return { model, sourceStats };
}

/** The coordinator's non-IID report (class-histogram.json), or null when the statistics round did not run. */
/** privacy.json written by the coordinator of a DP run (coordinator/run-artifacts.ts), or null. */
async function readPrivacy(outDir: string): Promise<PrivacyStatus | null> {
  try {
    return JSON.parse(await readFile(join(outDir, PRIVACY_FILE), 'utf8')) as PrivacyStatus;
  } catch {
    return null;
  }
}

async function readSecureClassHistogram(outDir: string): Promise<ClassHistogramReport | null> {
  try {
    const { sites: _sites, ...report } = JSON.parse(await readFile(join(outDir, 'class-histogram.json'), 'utf8')) as ClassHistogramReport & { sites: string[] };
    return report;
  } catch {
    return null;
  }
}

/** Runs the federation to completion and writes `outDir/summary.json`. */
export async function runFederatedSimulation(opts: RunFederatedOptions): Promise<SimulationSummary> {
  const startedAt = new Date();
  const log = opts.onLog ?? (() => {});
  const s = opts.scenario;
  // A DP scenario over its budget (or with impossible DP settings) is refused here, before any process starts.
  if (s.training.differentialPrivacy) {
    withDifferentialPrivacy(new FedAvg(), s.training.differentialPrivacy, { rounds: s.training.rounds, enrolledSites: s.sites.length });
  }
  const outDir = resolve(opts.outDir);
  const keysDir = join(outDir, 'keys');
  // A simulation is a fresh run with fresh identities: a previous run's results and checkpoints in the same folder
  // are replaced (a checkpoint would otherwise be resumed by the new coordinator).
  for (const f of ['checkpoints', 'keys', 'model', 'history.json', 'summary.json', 'source-stats.json', 'class-histogram.json', 'final-weights.fsws', 'run.json', 'initial-weights.bin', 'job.json', PRIVACY_FILE]) {
    await rm(join(outDir, f), { recursive: true, force: true });
  }
  await mkdir(keysDir, { recursive: true });
  await prepareDatasets(s, log);

  // Identities and the coordinator's allow-list: the same files a real deployment would hold.
  const coordinatorIdentity = generateIdentity();
  await saveIdentity(join(keysDir, 'coordinator.json'), coordinatorIdentity);
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

  // The initial global model: seeded, so a scenario reproduces.
  const engine = await initEngine();
  const unet = createUNet(
    { inChannels: 1, numClasses: s.data.numClasses, baseChannels: s.model.baseChannels, depth: s.model.depth },
    s.seed,
  );
  const initialWeightsFile = join(outDir, 'initial-weights.bin');
  await writeFile(initialWeightsFile, encodeWeightSet(unet.getWeights()));
  unet.dispose();

  const job: SimulationJob = {
    scenarioFile: resolve(opts.scenarioFile),
    outDir,
    coordinatorIdentityFile: join(keysDir, 'coordinator.json'),
    coordinatorPublicKey: publicKeyToString(coordinatorIdentity.publicKey),
    enrollmentFile,
    initialWeightsFile,
    sites,
  };
  const jobFile = join(outDir, 'job.json');
  await writeFile(jobFile, JSON.stringify(job, null, 2));

  const children: TsChild[] = [];
  const siteInfo = new Map<string, { trainSlices: number | null; valSlices: number | null; classHistogram: number[] | null }>();
  const personalized = new Map<string, Record<string, number>>();
  const siteExits: Promise<number>[] = [];
  let history: RoundRecord[] | null = null;
  const timeoutMs = opts.timeoutMs ?? s.training.rounds * s.training.stageTimeoutMs + 120_000;
  let timer: NodeJS.Timeout | undefined;

  try {
    const run = new Promise<void>((resolveRun, rejectRun) => {
      let finished = false;
      const fail = (msg: string): void => {
        if (!finished) {
          finished = true;
          rejectRun(new SimulationError('child-failed', msg));
        }
      };
      const coordinator = spawnTs('coordinator', new URL('./coordinator-process.ts', import.meta.url), [jobFile], {
        onEvent: (e: ChildEvent) => {
          switch (e.event) {
            case 'listening':
              log(`coordinator listening on ${String(e.url)}`);
              for (const site of sites) startSite(site.id, String(e.url));
              break;
            case 'roundStarted':
              log(`round ${String(e.round)} started with ${(e.sites as string[]).join(', ')}`);
              break;
            case 'roundCompleted': {
              const r = e.record as RoundRecord;
              const loss = r.meanTrainLoss === null ? 'n/a' : r.meanTrainLoss.toFixed(4);
              const dice = metricValue(r.evalMetrics, EVAL_METRIC.dice)?.toFixed(3) ?? 'n/a';
              log(`round ${r.round} done in ${(r.durationMs / 1000).toFixed(1)} s: mean train loss ${loss}, mean val Dice ${dice}`);
              break;
            }
            case 'sourceStats':
              log(`pooled source statistics from ${(e.sites as string[]).join(', ')} -> source-stats.json`);
              break;
            case 'sourceStatsFailed':
              log(`no source statistics package: ${String(e.message)}`);
              break;
            case 'classHistogram':
              log(`non-IID report from masked sums over ${(e.sites as string[]).join(', ')}: heterogeneity ${Number(e.heterogeneity).toFixed(5)} -> class-histogram.json`);
              break;
            case 'classHistogramFailed':
              log(`no non-IID report: ${String(e.message)}`);
              break;
            case 'siteFailed':
              log(`site failure: ${JSON.stringify(e.failure)}`);
              break;
            case 'error':
              fail(`coordinator: ${String(e.message)}`);
              break;
            default:
              break;
          }
        },
      });
      children.push(coordinator);
      void coordinator.exited.then(async (code) => {
        if (code !== 0) return fail(`coordinator exited with code ${code}\n${coordinator.stderrTail()}`);
        history = JSON.parse(await readFile(join(outDir, 'history.json'), 'utf8')) as RoundRecord[];
        // With personalisation the sites fine-tune after the coordinator is done: wait for them to report.
        if (s.training.personalizeEpochs > 0) await Promise.all(siteExits);
        finished = true;
        resolveRun();
      });

      const startSite = (siteId: string, url: string): void => {
        const child = spawnTs(
          siteId,
          new URL('./site-process.ts', import.meta.url),
          [jobFile, siteId],
          {
            onEvent: (e) => {
              if (e.event === 'ready') {
                const hist = e.classHistogram as number[];
                siteInfo.set(siteId, { trainSlices: e.trainSlices as number, valSlices: e.valSlices as number, classHistogram: hist });
                const total = hist.reduce((a, b) => a + b, 0);
                const shares = hist.map((h, c) => `c${c} ${((100 * h) / total).toFixed(1)}%`).join(' ');
                log(
                  `${siteId}: ready on backend ${String(e.backend)}, ${String(e.trainCases)} cases / ${String(e.trainSlices)} training and ` +
                    `${String(e.valSlices)} validation slices; training pixels by class: ${shares}`,
                );
              } else if (e.event === 'progress') {
                // Distributed DP: the site's own accounting of what it added (its audit log has the same entry).
                const pr = e.progress as { type?: string; round?: number; metrics?: Record<string, number> };
                const m = pr.metrics ?? {};
                if (pr.type === 'fit' && m['dp.epsilon'] !== undefined) {
                  log(`${siteId}: round ${pr.round}: update norm ${m['dp.updateNorm']?.toFixed(4)} clipped to ${m['dp.clip']}, noise share sigma ${m['dp.siteSigma']?.toFixed(1)} steps; own epsilon so far ${m['dp.epsilon'].toFixed(3)} (delta ${m['dp.delta']})`);
                }
              } else if (e.event === 'personalized') {
                const m = e.metrics as Record<string, number>;
                personalized.set(siteId, m);
                log(`${siteId}: fine-tuned locally for ${s.training.personalizeEpochs} epoch(s): validation Dice ${metricValue(m, EVAL_METRIC.dice)?.toFixed(3) ?? 'n/a'}`);
              } else if (e.event === 'error') {
                fail(`${siteId}: ${String(e.message)}`);
              }
            },
          },
          { ...process.env, FEDSFDA_COORDINATOR_URL: url },
        );
        children.push(child);
        siteExits.push(child.exited);
        void child.exited.then((code) => {
          if (code !== 0) fail(`${siteId} exited with code ${code}\n${child.stderrTail()}`);
        });
      };
    });
    const deadline = new Promise<never>((_, rejectDeadline) => {
      timer = setTimeout(() => rejectDeadline(new SimulationError('timeout', `simulation exceeded ${timeoutMs} ms`)), timeoutMs);
    });
    await Promise.race([run, deadline]);
  } finally {
    if (timer) clearTimeout(timer);
    for (const c of children) if (c.process.exitCode === null) c.process.kill('SIGTERM');
  }

  const artifacts = await writeArtifacts(outDir, s);
  const histograms = s.sites.map((site) => siteInfo.get(site.id)?.classHistogram ?? null);
  const summary = buildSummary({
    artifacts,
    nonIid: {
      secure: await readSecureClassHistogram(outDir),
      inClear: histograms.every((h): h is number[] => h !== null) && histograms.length > 0 ? classHistogramReportInClear(histograms) : null,
    },
    privacy: await readPrivacy(outDir),
    scenario: s.name,
    startedAt,
    backend: engine.backend,
    config: s,
    numClasses: s.data.numClasses,
    sites: s.sites.map((site) => ({
      id: site.id,
      shift: site.shift ?? `folder ${basename(site.dataDir ?? '')}`,
      trainSlices: siteInfo.get(site.id)?.trainSlices ?? null,
      valSlices: siteInfo.get(site.id)?.valSlices ?? null,
      classHistogram: siteInfo.get(site.id)?.classHistogram ?? null,
      personalizedMetrics: personalized.get(site.id) ?? null,
    })),
    history: history ?? [],
  });
  await writeFile(join(outDir, 'summary.json'), JSON.stringify(summary, null, 2));
  return summary;
}
