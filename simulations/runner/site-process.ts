/**
 * Child process: one simulated hospital. Builds its own data (it never leaves this process), trains the U-Net when
 * the coordinator asks, and reports progress as typed events (child-events.ts) on stdout. Stopped on purpose
 * (SIGTERM/SIGINT, or the parent gone) it exits 0 at once: it holds nothing to save.
 * Usage: site-process.ts JOB_FILE SITE_ID
 */
import { getLogger } from '../../protocol/common/index.ts';
import { loadIdentity } from '../../protocol/index.ts';
import { cryptoNoiseSource, DP_SGD_METRIC, planDpSgd, seededNoiseSource } from '../../protocol/privacy/index.ts';
import { runSite, type SiteProgress } from '../../site-agent/client/index.ts';
import { initEngine } from '../../site-agent/engine/index.ts';
import { DpSgdSession } from '../../site-agent/train/index.ts';
import { asLocalTrainer, UNetTrainer } from '../../site-agent/trainer/index.ts';
import { classHistogram } from '../partition/index.ts';
import { loadScenarioFile, parseFederatedScenario, type FederatedScenario } from '../scenario.ts';
import { emitChildEvent, siteEventSchema, type SiteEvent, type SiteProgressEvent } from './child-events.ts';
import { onStopRequest } from './child-lifecycle.ts';
import { readJob } from './job.ts';
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

async function main(): Promise<void> {
  const [jobFile, siteId] = process.argv.slice(2);
  onStopRequest((reason) => {
    getLogger().info({ code: 'STOP_REQUESTED', reason, siteId }, 'site: stopping on request');
    process.exit(0);
  });
  const job = await readJob(jobFile);
  const site = job.sites.find((s) => s.id === siteId);
  if (!site) throw new Error(`site ${siteId} is not in the job file`);
  const { raw, text } = await loadScenarioFile(job.scenarioFile);
  const scenario = parseFederatedScenario(job.scenarioFile, raw, text);

  const engine = await initEngine();
  const data = await buildSiteData(scenario, site.index);
  emit({
    event: 'ready',
    siteId,
    backend: engine.backend,
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
  });
  const result = await runSite({
    url: process.env.FEDSFDA_COORDINATOR_URL ?? '',
    identity: await loadIdentity(site.identityFile),
    coordinatorPublicKey: job.coordinatorPublicKey,
    siteId,
    trainer: asLocalTrainer(trainer),
    logger: getLogger(),
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
  emit({ event: 'done', siteId, ...result });
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    const code = (err as { code?: unknown }).code;
    emit({ event: 'error', message: err instanceof Error ? err.message : String(err), ...(typeof code === 'string' ? { code } : {}) });
    process.exit(1);
  },
);
