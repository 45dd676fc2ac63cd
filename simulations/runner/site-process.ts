/**
 * Child process: one simulated hospital. Generates its own phantom data (it never leaves this process),
 * trains the U-Net when the coordinator asks, and reports progress as JSON event lines on stdout.
 * Usage: site-process.ts JOB_FILE SITE_ID
 */
import { loadIdentity } from '../../protocol/identity.ts';
import { getLogger } from '../../protocol/common/index.ts';
import { runSite } from '../../site-agent/client/index.ts';
import { initEngine } from '../../site-agent/engine/index.ts';
import { asLocalTrainer, UNetTrainer } from '../../site-agent/trainer/index.ts';
import { loadScenarioFile, parseFederatedScenario } from '../scenario.ts';
import { readJob } from './job.ts';
import { classHistogram } from '../partition/index.ts';
import { buildSiteData } from './site-data.ts';
import { emitEvent } from './spawn-ts.ts';

async function main(): Promise<void> {
  const [jobFile, siteId] = process.argv.slice(2);
  const job = await readJob(jobFile);
  const site = job.sites.find((s) => s.id === siteId);
  if (!site) throw new Error(`site ${siteId} is not in the job file`);
  const { raw, text } = await loadScenarioFile(job.scenarioFile);
  const scenario = parseFederatedScenario(job.scenarioFile, raw, text);

  const engine = await initEngine();
  const data = await buildSiteData(scenario, site.index);
  emitEvent('ready', {
    siteId,
    backend: engine.backend,
    trainSlices: data.train.n,
    valSlices: data.val.n,
    trainCases: new Set(data.train.caseIds).size,
    classHistogram: classHistogram(data.train),
  });

  const trainer = new UNetTrainer({
    model: {
      inChannels: data.train.channels,
      numClasses: scenario.data.numClasses,
      baseChannels: scenario.model.baseChannels,
      depth: scenario.model.depth,
    },
    train: data.train,
    val: data.val,
    batchSize: scenario.training.batchSize,
    optimizer: scenario.training.optimizer,
    loss: scenario.training.loss,
    seed: scenario.seed * 31 + site.index,
  });
  const identity = await loadIdentity(site.identityFile);
  const result = await runSite({
    url: process.env.FEDSFDA_COORDINATOR_URL ?? '',
    identity,
    coordinatorPublicKey: job.coordinatorPublicKey,
    siteId,
    trainer: asLocalTrainer(trainer),
    logger: getLogger(),
    onProgress: (p) => emitEvent('progress', { siteId, progress: p }),
  });
  if (scenario.training.personalizeEpochs > 0) {
    // Personalisation baseline: the final global model fine-tuned on this site's data only, scored locally.
    const metrics = await trainer.personalize({ epochs: scenario.training.personalizeEpochs, lr: scenario.training.lr });
    emitEvent('personalized', { siteId, metrics });
  }
  emitEvent('done', { siteId, ...result });
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    emitEvent('error', { message: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  },
);
