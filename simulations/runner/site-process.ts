/**
 * Child process: one or more simulated hospitals (SITE_ID ...). Each site builds its own data (it never leaves that
 * site's objects), holds its own identity, trainer and socket.io session, and reports progress as typed events
 * (child-events.ts) on stdout. Sites in one process share only the engine (the tfjs backend and the native kernels;
 * a training step runs synchronously, so one site's step never interleaves with another's): that is how a hundred
 * sites fit on one machine (`sitesPerProcess` in the scenario). Stopped on purpose (SIGTERM/SIGINT, or the parent
 * gone) it exits 0 at once: it holds nothing to save.
 * Usage: site-process.ts JOB_FILE SITE_ID [SITE_ID ...]
 */
import { getLogger } from '../../protocol/common/index.ts';
import { loadIdentity } from '../../protocol/index.ts';
import { cryptoNoiseSource, DP_SGD_METRIC, planDpSgd, seededNoiseSource } from '../../protocol/privacy/index.ts';
import { runSite, type SiteProgress } from '../../site-agent/client/index.ts';
import { initEngine } from '../../site-agent/engine/index.ts';
import { DpSgdSession, roundAugmenter } from '../../site-agent/training/index.ts';
import { asLocalTrainer, UNetTrainer } from '../../site-agent/client/index.ts';
import { classHistogram } from '../partition/index.ts';
import { loadScenarioFile, parseFederatedScenario, type FederatedScenario } from '../scenario.ts';
import { emitChildEvent, siteEventSchema, type SiteEvent, type SiteProgressEvent } from './child-events.ts';
import { onStopRequest } from './child-lifecycle.ts';
import { readJob, type SimulationJob } from './job.ts';
import { buildSiteData } from './site-data.ts';

const emit = (e: SiteEvent): void => emitChildEvent(siteEventSchema, e);

/** The session events the parent prints (connections, failures with their cause, disconnections). */
function progressEvent(p: SiteProgress): SiteProgressEvent | null {
  switch (p.type) {
    case 'connected':
      return { type: 'connected', attempt: p.attempt };
    case 'failed':
      return { type: 'failed', round: p.round, stage: p.stage, reason: p.reason };
    case 'disconnected':
      return { type: 'disconnected', bytesSent: p.bytesSent, bytesReceived: p.bytesReceived };
    case 'fit': {
      const m = p.metrics;
      const sgdEps = m[DP_SGD_METRIC.epsilon];
      if (sgdEps !== undefined) {
        return { type: 'dp-sgd-fit', round: p.round, steps: m[DP_SGD_METRIC.steps] ?? NaN, clippedFraction: m[DP_SGD_METRIC.clippedFraction] ?? NaN, noiseMultiplier: m[DP_SGD_METRIC.noiseMultiplier] ?? NaN, epsilon: sgdEps, delta: m[DP_SGD_METRIC.delta] ?? NaN };
      }
      const eps = m['dp.epsilon'];
      if (eps === undefined) return null;
      return { type: 'dp-fit', round: p.round, updateNorm: m['dp.updateNorm'] ?? NaN, clip: m['dp.clip'] ?? NaN, siteSigma: m['dp.siteSigma'] ?? NaN, epsilon: eps, delta: m['dp.delta'] ?? NaN };
    }
    default:
      return null;
  }
}

/**
 * The site's DP-SGD session when the scenario asks for it: planned over all its local epochs (rounds x local epochs),
 * refused before round 1 when the plan is over the budget (PrivacyError 'budget-exceeded').
 */
function dpSgdSession(scenario: FederatedScenario, siteIndex: number, examples: number): DpSgdSession | undefined {
  const cfg = scenario.training.dpSgd;
  if (!cfg) return undefined;
  const plan = planDpSgd(cfg, { examples, batchSize: scenario.training.batchSize, plannedEpochs: scenario.training.rounds * scenario.training.localEpochs });
  const noise = cfg.seed !== undefined ? seededNoiseSource(cfg.seed * 1009 + siteIndex) : cryptoNoiseSource();
  return new DpSgdSession(plan, noise);
}

/** A site's failure, tagged with the site (several sites may share this process). */
class SiteFailure extends Error {
  constructor(
    readonly siteId: string,
    readonly failure: unknown,
  ) {
    super(failure instanceof Error ? failure.message : String(failure));
  }
}

/** This process's peak resident set so far, in bytes (maxRSS is in kilobytes). */
const peakRssBytes = (): number => process.resourceUsage().maxRSS * 1024;

/** One hospital, from its data to its last round (and the optional personalisation). */
async function runOneSite(job: SimulationJob, scenario: FederatedScenario, siteId: string, backend: string): Promise<void> {
  const site = job.sites.find((s) => s.id === siteId);
  if (!site) throw new Error(`site ${siteId} is not in the job file`);
  const data = await buildSiteData(scenario, site.index);
  emit({
    event: 'ready',
    siteId,
    backend,
    trainSlices: data.train.n,
    valSlices: data.val.n,
    trainCases: new Set(data.train.caseIds).size,
    classHistogram: classHistogram(data.train),
  });

  const dpSgd = dpSgdSession(scenario, site.index, data.train.n);
  const trainer = new UNetTrainer({
    model: {
      inChannels: data.train.channels,
      numClasses: scenario.data.numClasses,
      baseChannels: scenario.model.baseChannels,
      depth: scenario.model.depth,
      ...(scenario.model.normalization === 'group' ? { normalization: 'group' as const } : {}),
    },
    train: data.train,
    val: data.val,
    batchSize: scenario.training.batchSize,
    optimizer: scenario.training.optimizer,
    loss: scenario.training.loss,
    seed: scenario.seed * 31 + site.index,
    ...(dpSgd ? { dpSgd } : {}),
    ...(scenario.training.augment ? { augment: roundAugmenter(scenario.training.augment, scenario.seed * 31 + site.index) } : {}),
  });
  const result = await runSite({
    url: process.env.FEDSFDA_COORDINATOR_URL ?? '',
    identity: await loadIdentity(site.identityFile),
    coordinatorPublicKey: job.coordinatorPublicKey,
    siteId,
    trainer: asLocalTrainer(trainer),
    logger: getLogger().child({ siteId }),
    onProgress: (p) => {
      const progress = progressEvent(p);
      if (progress) emit({ event: 'progress', siteId, progress });
    },
  });
  if (scenario.training.personalizeEpochs > 0) {
    // Personalisation baseline: the final global model fine-tuned on this site's data only, scored locally.
    const metrics = await trainer.personalize({ epochs: scenario.training.personalizeEpochs, lr: scenario.training.lr });
    emit({ event: 'personalized', siteId, metrics });
  }
  emit({ event: 'done', siteId, ...result, processPeakRssBytes: peakRssBytes() });
}


async function main(): Promise<void> {
  const [jobFile, ...siteIds] = process.argv.slice(2);
  if (jobFile === undefined || siteIds.length === 0) throw new Error('usage: site-process.ts JOB_FILE SITE_ID [SITE_ID ...]');
  onStopRequest((reason) => {
    getLogger().info({ code: 'STOP_REQUESTED', reason, siteIds }, 'site process: stopping on request');
    process.exit(0);
  });
  const job = await readJob(jobFile);
  const { raw, text } = await loadScenarioFile(job.scenarioFile);
  const scenario = parseFederatedScenario(job.scenarioFile, raw, text);
  const engine = await initEngine();
  // The first failing site fails the process (as a site alone in its process would): the parent stops the run.
  await Promise.all(siteIds.map((id) => runOneSite(job, scenario, id, engine.backend).catch((err: unknown) => Promise.reject(new SiteFailure(id, err)))));
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    const cause = err instanceof SiteFailure ? err.failure : err;
    const code = (cause as { code?: unknown } | null)?.code;
    emit({
      event: 'error',
      message: err instanceof Error ? err.message : String(err),
      ...(err instanceof SiteFailure ? { siteId: err.siteId } : {}),
      ...(typeof code === 'string' ? { code } : {}),
    });
    process.exit(1);
  },
);
