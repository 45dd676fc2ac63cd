/**
 * `fedsfda adapt` and `fedsfda source-stats`: the new site's commands. Target labels (`--eval-labels DIR`, or
 * `--evaluate` for phantom data) are read only to score before/after; adaptation receives `UnlabeledSlices`.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { SliceDataset } from '../data/slice-dataset.ts';
import { loadSiteDataset, reassembleLabelVolume, writePrediction, type SiteDataset } from '../data/dataset/index.ts';
import { initEngine } from '../engine/index.ts';
import { loadModelFromPath, saveModel, type UNet } from '../model/index.ts';
import { generateSiteData } from '../../simulations/phantoms/index.ts';
import { adapt, ADAPT_METHODS, isAdaptMethod } from './adapt.ts';
import { AdaptError } from './adapt-error.ts';
import { predictLabels } from './batching.ts';
import { evaluateSegmentation, type SegmentationEvaluation } from './evaluate.ts';
import { computeSourceStats, loadSourceStats, saveSourceStats } from './source-stats.ts';
import { toUnlabeled } from './unlabeled-slices.ts';

interface DataOpts {
  data?: string;
  phantomPreset?: string;
  phantomSeed: string;
  phantomCases: string;
  slicesPerCase: string;
  size?: string;
}

interface LoadedTarget {
  readonly ds: SliceDataset;
  readonly site?: SiteDataset;
}

async function loadData(o: DataOpts, unet: UNet, dir: string | undefined): Promise<LoadedTarget> {
  const size = Number(o.size ?? unet.config.inputSize?.[0] ?? 64);
  if (dir !== undefined) {
    const site = await loadSiteDataset(dir, { size, skipBad: true });
    return { ds: site.dataset, site };
  }
  if (o.phantomPreset === undefined) throw new AdaptError('BAD_OPTION', 'give --data DIR or --phantom-preset NAME');
  const ds = generateSiteData({
    seed: Number(o.phantomSeed),
    numCases: Number(o.phantomCases),
    slicesPerCase: Number(o.slicesPerCase),
    size,
    numClasses: unet.config.numClasses,
    shift: o.phantomPreset as never,
  });
  return { ds };
}

function summaryLine(tag: string, ev: SegmentationEvaluation): string {
  const m = ev.summary.mean;
  return `${tag}: Dice ${m.dice.mean.toFixed(4)}  IoU ${m.iou.mean.toFixed(4)}  HD95 ${m.hd95.mean.toFixed(2)} mm  ASSD ${m.assd.mean.toFixed(2)} mm  (infinite distances: ${ev.summary.infiniteCount}, volumes: ${ev.summary.numCases})`;
}

function dataOptions(cmd: Command): Command {
  return cmd
    .option('--data <dir>', 'Decathlon-layout dataset folder (NIfTI)')
    .option('--phantom-preset <name>', 'generate phantom data with this scanner preset instead (e.g. mr-to-ct)')
    .option('--phantom-seed <n>', 'phantom seed', '1')
    .option('--phantom-cases <n>', 'phantom cases', '4')
    .option('--slices-per-case <n>', 'phantom slices per case', '8')
    .option('--size <px>', 'slice size (default: the model input size, else 64)');
}

export function registerAdaptCommands(program: Command): void {
  dataOptions(
    program
      .command('adapt')
      .description('adapt a federated model to unlabeled target data, source-free')
      .requiredOption('--model <path>', 'model folder (saveModel format) or a final-weights.fsws written by the coordinator')
      .requiredOption('--source-stats <file>', 'source statistics package (JSON)')
      .requiredOption('--method <name>', `one of ${ADAPT_METHODS.join(', ')}`)
      .requiredOption('--out <dir>', 'output directory: adapted model, predictions, report')
      .option('--eval-labels <dir>', 'labelled copy of the target dataset, used only to score before/after')
      .option('--evaluate', 'phantom data: score before/after with the generated labels')
      .option('--seed <n>', 'adaptation seed', '1')
      .option('--epochs <n>', 'passes over the target data (method default if omitted)')
      .option('--batch-size <n>', 'batch size', '8')
      .option('--polarity-check', 'label-free input polarity check first: keep the source model or its negated-input twin, whichever is less uncertain on the target (input-polarity.ts)'),
  ).action(async (o: DataOpts & { model: string; sourceStats: string; method: string; out: string; evalLabels?: string; evaluate?: boolean; seed: string; epochs?: string; batchSize: string; polarityCheck?: boolean }) => {
    await initEngine();
    if (!isAdaptMethod(o.method)) throw new AdaptError('UNKNOWN_METHOD', `unknown --method '${o.method}'; use one of ${ADAPT_METHODS.join(', ')}`);
    const unet = await loadModelFromPath(o.model);
    const stats = await loadSourceStats(o.sourceStats);
    const target = await loadData(o, unet, o.data);
    let labels: Uint8Array | undefined;
    if (o.evalLabels !== undefined) {
      const lab = await loadData(o, unet, o.evalLabels);
      if (lab.ds.n !== target.ds.n || lab.ds.caseIds.some((c, i) => c !== target.ds.caseIds[i])) {
        throw new AdaptError('BAD_SHAPE', `--eval-labels ${o.evalLabels} does not hold the same cases/slices as the target data`);
      }
      labels = lab.ds.labels;
    } else if (o.evaluate && target.site === undefined) labels = target.ds.labels;
    const images = toUnlabeled(target.ds);
    const before = labels ? evaluateSegmentation(unet, images, labels, target.ds.sliceThickness) : undefined;
    if (before) console.log(summaryLine('before', before));
    const opts = { seed: Number(o.seed), batchSize: Number(o.batchSize), ...(o.epochs ? { epochs: Number(o.epochs) } : {}), ...(o.polarityCheck ? { inputPolarities: [1, -1] } : {}) };
    const report = adapt(o.method, unet, images, stats, {
      ...opts,
      onProgress: (s, t, l) => process.stderr.write(`\rstep ${s}/${t} loss ${l.toFixed(4)}   `),
    });
    process.stderr.write('\n');
    const after = labels ? evaluateSegmentation(unet, images, labels, target.ds.sliceThickness) : undefined;
    if (after) console.log(summaryLine('after ', after));
    const predictions = after ? after.predictions : predictLabels(unet, images, Number(o.batchSize));
    await mkdir(join(o.out, 'predictions'), { recursive: true });
    await saveModel(unet, join(o.out, 'model'));
    if (target.site) {
      const { cases, loaded } = target.site;
      const px = images.height * images.width;
      for (const c of cases) {
        const vol = reassembleLabelVolume(predictions.subarray(c.start * px, (c.start + c.count) * px), images.height, images.width, c);
        const like = loaded.cases.find((lc) => lc.id === c.caseId)!.image;
        await writePrediction(join(o.out, 'predictions', `${c.caseId}.nii.gz`), vol, like, target.site.labelCodes);
      }
    } else {
      await writeFile(join(o.out, 'predictions', 'labels.u8'), predictions);
      await writeFile(join(o.out, 'predictions', 'labels.json'), JSON.stringify({ shape: [images.n, images.height, images.width], caseIds: images.caseIds }));
    }
    const metrics = (ev?: SegmentationEvaluation) => ev && { summary: ev.summary, perCase: ev.perCase };
    await writeFile(join(o.out, 'adapt-report.json'), JSON.stringify({ method: o.method, report, before: metrics(before), after: metrics(after) }, null, 2));
    console.log(`adapted model -> ${join(o.out, 'model')}; predictions -> ${join(o.out, 'predictions')}; ${report.notes.join('; ')}`);
    unet.dispose();
  });

  dataOptions(
    program
      .command('source-stats')
      .description('compute a source site\'s statistics package (BN moments, per-class latent moments) from labelled data')
      .requiredOption('--model <path>', 'model folder or final-weights.fsws')
      .requiredOption('--out <file>', 'output JSON file')
      .option('--confidence <p>', 'max-softmax threshold for confident pixels', '0.97'),
  ).action(async (o: DataOpts & { model: string; out: string; confidence: string }) => {
    await initEngine();
    const unet = await loadModelFromPath(o.model);
    const { ds } = await loadData(o, unet, o.data);
    const stats = computeSourceStats(unet, ds, { confidence: Number(o.confidence) });
    await saveSourceStats(stats, o.out);
    console.log(`source statistics of ${ds.n} slices -> ${o.out} (confident pixels per class: ${stats.classes.map((c) => c.confident.count).join(', ')})`);
    unet.dispose();
  });
}
