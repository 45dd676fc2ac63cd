/**
 * `fedsfda simulate` for a federated scenario: one coordinator process and one process per site, talking
 * socket.io over loopback with encrypted sessions, exactly as separate hospitals would. Interrupted through its
 * AbortSignal (SIGINT/SIGTERM on the CLI), it stops every process and still writes a summary, marked `interrupted`.
 */
import { access, readFile, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { PRIVACY_FILE, PRIVACY_LEDGER_FILE, type PrivacyStatus } from '../../coordinator/index.ts';
import type { RunPrivacyReport } from '../../protocol/privacy/index.ts';
import { classHistogramReportInClear, decodeWeightSet, type ClassHistogramReport } from '../../protocol/index.ts';
import { createUNet, saveModel } from '../../site-agent/model/index.ts';
import type { FederatedScenario } from '../scenario.ts';
import { runFederation, type FederationOutcome } from './federation.ts';
import { PreparationInterrupted, prepareRunFolder, type PreparedRun } from './run-folder.ts';
import { buildSummary, memorySummary, type MemorySummary, type SimulationSummary } from './summary.ts';
import { writeReportHtml } from '../../site-agent/report/index.ts';
import { simulationReport } from './simulation-report.ts';

export { SimulationError } from './federation.ts';

export interface RunFederatedOptions {
  readonly scenarioFile: string;
  readonly scenario: FederatedScenario;
  readonly outDir: string;
  /** Progress lines for a human (the CLI prints them). */
  readonly onLog?: (line: string) => void;
  /** Hard limit for the whole run (default: rounds x stage timeout + 2 min). */
  readonly timeoutMs?: number;
  /** Aborting stops every process; the summary is written and marked interrupted. */
  readonly signal?: AbortSignal;
}

const exists = (f: string): Promise<boolean> => access(f).then(() => true, () => false);

/**
 * The final global model as a model folder (`fedsfda adapt --model`), next to the pooled source statistics
 * (`--source-stats`) that the coordinator wrote: what a new hospital needs for source-free adaptation.
 */
async function writeArtifacts(outDir: string, s: FederatedScenario): Promise<SimulationSummary['artifacts']> {
  let model: string | null = null;
  if (await exists(join(outDir, 'final-weights.fsws'))) {
    const unet = createUNet({ inChannels: s.data.channels, numClasses: s.data.numClasses, baseChannels: s.model.baseChannels, depth: s.model.depth, ...(s.model.normalization === 'group' ? { normalization: 'group' as const } : {}) }, s.seed);
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
async function readSecureClassHistogram(outDir: string): Promise<ClassHistogramReport | null> {
  const file = join(outDir, 'class-histogram.json');
  if (!(await exists(file))) return null;
  const { sites: _sites, ...report } = JSON.parse(await readFile(file, 'utf8')) as ClassHistogramReport & { sites: string[] };
  return report;
}

/** privacy.json written by the coordinator of a DP run (coordinator/run-artifacts.ts), or null without DP. */
async function readPrivacy(outDir: string): Promise<PrivacyStatus | null> {
  const file = join(outDir, PRIVACY_FILE);
  return (await exists(file)) ? (JSON.parse(await readFile(file, 'utf8')) as PrivacyStatus) : null;
}

/** privacy-ledger.json (training + statistics composed), or null when nothing is DP. */
async function readPrivacyLedger(outDir: string): Promise<RunPrivacyReport | null> {
  const file = join(outDir, PRIVACY_LEDGER_FILE);
  return (await exists(file)) ? (JSON.parse(await readFile(file, 'utf8')) as RunPrivacyReport) : null;
}

async function summarize(s: FederatedScenario, outDir: string, startedAt: Date, backend: string, run: FederationOutcome): Promise<SimulationSummary> {
  const histograms = s.sites.map((site) => run.sites.get(site.id)?.classHistogram ?? null);
  return buildSummary({
    artifacts: await writeArtifacts(outDir, s),
    nonIid: {
      secure: await readSecureClassHistogram(outDir),
      inClear: histograms.length > 0 && histograms.every((h): h is number[] => h !== null) ? classHistogramReportInClear(histograms) : null,
    },
    scenario: s.name,
    startedAt,
    backend,
    config: s,
    numClasses: s.data.numClasses,
    interrupted: run.status === 'interrupted',
    sites: s.sites.map((site) => ({
      id: site.id,
      shift: site.shift ?? `folder ${basename(site.dataDir ?? '')}`,
      trainSlices: run.sites.get(site.id)?.trainSlices ?? null,
      valSlices: run.sites.get(site.id)?.valSlices ?? null,
      classHistogram: run.sites.get(site.id)?.classHistogram ?? null,
      personalizedMetrics: run.personalized.get(site.id) ?? null,
      dpSgd: run.dpSgd.get(site.id) ?? null,
    })),
    history: run.history,
    privacy: await readPrivacy(outDir),
    privacyLedger: await readPrivacyLedger(outDir),
    memory: memorySummary(run.memory),
  });
}

function memoryLine(m: MemorySummary): string {
  const mb = (v: number | null): string => (v === null ? 'n/a' : `${v.toFixed(0)} MB`);
  return `peak memory (RSS): coordinator ${mb(m.coordinatorPeakRssMb)}; ${m.siteProcesses} site process(es) of up to ${m.sitesPerProcess} site(s): largest ${mb(m.sitePeakRssMbMax)}, sum ${mb(m.sitePeakRssMbSum)}`;
}

/** The outcome of a run interrupted before its processes started. */
function notStarted(s: FederatedScenario): FederationOutcome {
  return { status: 'interrupted', history: [], sites: new Map(), personalized: new Map(), dpSgd: new Map(), memory: { coordinatorPeakRssBytes: null, sitesPerProcess: s.sitesPerProcess, siteProcessPeakRssBytes: [] } };
}

/** Runs the federation to completion (or until interrupted) and writes `outDir/summary.json`. */
export async function runFederatedSimulation(opts: RunFederatedOptions): Promise<SimulationSummary> {
  const startedAt = new Date();
  const log = opts.onLog ?? (() => {});
  const s = opts.scenario;
  const outDir = resolve(opts.outDir);
  let prepared: PreparedRun;
  try {
    prepared = await prepareRunFolder(opts.scenarioFile, s, outDir, log, opts.signal);
  } catch (err) {
    if (!(err instanceof PreparationInterrupted)) throw err;
    // Stopped before any process started: a summary with no rounds, marked interrupted.
    log('interrupted while preparing: no process was started');
    const summary = await summarize(s, outDir, startedAt, 'not started', notStarted(s));
    await writeFile(join(outDir, 'summary.json'), JSON.stringify(summary, null, 2));
    return summary;
  }
  const { job, jobFile, backend } = prepared;
  const run = await runFederation({
    job,
    jobFile,
    waitForSites: s.training.personalizeEpochs > 0,
    personalizeEpochs: s.training.personalizeEpochs,
    timeoutMs: opts.timeoutMs ?? s.training.rounds * s.training.stageTimeoutMs + 120_000,
    log,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const summary = await summarize(s, outDir, startedAt, backend, run);
  if (summary.memory) log(memoryLine(summary.memory));
  await writeFile(join(outDir, 'summary.json'), JSON.stringify(summary, null, 2));
  // The results report next to summary.json: curves, tables, overlays (simulation-report.ts).
  const finalWeights = await readFile(join(outDir, 'final-weights.fsws')).then((b) => new Uint8Array(b), () => null);
  await writeReportHtml(outDir, await simulationReport({ summary, history: run.history, scenario: s, finalWeights }));
  return summary;
}
