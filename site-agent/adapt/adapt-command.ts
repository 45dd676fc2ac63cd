/**
 * `fedsfda adapt` and `fedsfda source-stats`: the new site's commands. `adapt` reads the target folder's images
 * only (a folder of images, a Decathlon `imagesTs/`, a dataset without labels); target labels (`--eval-labels DIR`)
 * are read only to score before/after, and adaptation receives `UnlabeledSlices`.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { loadSiteDataset, readLabelCodes, reassembleLabelVolume, writePrediction, type UnlabeledSiteDataset } from '../data/index.ts';
import { getLogger } from '../../protocol/common/index.ts';
import { initEngine } from '../engine/index.ts';
import { loadModelFromPath, saveModel, type UNet } from '../model/index.ts';
import { adapt, adaptWithLabels, ADAPT_METHODS, isAdaptMethod } from './adapt.ts';
import { applyCurve, saveCurve, type IntensityCurve } from './intensity-curve.ts';
import { AdaptError } from './adapt-error.ts';
import type { AdaptReport } from './adapt-report.ts';
import { GUARDED_WIDE_SEARCH, type InputAdapterOptions } from './input-adapter.ts';
import { fallbackNote } from './safeguard.ts';
import { predictLabels } from './batching.ts';
import { evaluateSegmentation, type SegmentationEvaluation } from './evaluate.ts';
import { computeSourceStats, loadSourceStats, packageLabelCodes, saveSourceStats, type SourceStats } from './source-stats.ts';
import { loadTarget, matchEvalLabels, type LabelledSubset } from './target-data.ts';

interface AdaptOpts {
  model: string;
  sourceStats: string;
  method: string;
  data: string;
  out: string;
  evalLabels?: string;
  size?: string;
  seed: string;
  epochs?: string;
  batchSize: string;
  polarityCheck?: boolean;
  inputAdapter?: boolean;
  wideSearch?: boolean;
  denoise?: boolean;
  biasCorrection?: boolean;
  bandPermutations?: boolean;
  safeguard?: boolean;
  labelled?: string;
  labelTable?: string;
}

/** Flags that extend the input adapter, each refused without --input-adapter. */
const ADAPTER_EXTRAS = [
  { key: 'wideSearch', flag: '--wide-search', what: 'widens the input adapter' },
  { key: 'denoise', flag: '--denoise', what: 'adds a pre-filter to the input adapter' },
  { key: 'biasCorrection', flag: '--bias-correction', what: 'corrects the images in front of the input adapter' },
  { key: 'bandPermutations', flag: '--band-permutations', what: 'adds band-order starts to the input adapter' },
] as const;

/** The input adapter's options for the given flags (the shipped defaults plus the opt-in extras asked for). */
function adapterOptions(o: AdaptOpts): InputAdapterOptions {
  return {
    ...(o.wideSearch ? { wideSearch: GUARDED_WIDE_SEARCH } : {}),
    ...(o.denoise ? { denoise: {} } : {}),
    ...(o.biasCorrection ? { biasCorrection: {} } : {}),
    ...(o.bandPermutations ? { bandPermutations: {} } : {}),
  };
}

/** The input curve of an adapted model, next to its model.json (written when the input adapter ran). */
export const INPUT_CURVE_FILE = 'input-curve.json';

function inputSize(o: { size?: string }, unet: UNet): number {
  const size = Number(o.size ?? unet.config.inputSize?.[0] ?? 64);
  if (!Number.isInteger(size) || size < 2) throw new AdaptError('BAD_OPTION', `--size must be an integer >= 2, got "${o.size}"`);
  return size;
}

function summaryLine(tag: string, ev: SegmentationEvaluation): string {
  const m = ev.summary.mean;
  return `${tag}: Dice ${m.dice.mean.toFixed(4)}  IoU ${m.iou.mean.toFixed(4)}  HD95 ${m.hd95.mean.toFixed(2)} mm  ASSD ${m.assd.mean.toFixed(2)} mm  (infinite distances: ${ev.summary.infiniteCount}, volumes: ${ev.summary.numCases})`;
}

function evaluate(unet: UNet, scored: LabelledSubset | undefined, tag: string, curve?: IntensityCurve): SegmentationEvaluation | undefined {
  if (scored === undefined) return undefined;
  const ev = evaluateSegmentation(unet, curve ? applyCurve(curve, scored.images) : scored.images, scored.labels, scored.sliceThickness);
  console.log(summaryLine(tag, ev));
  return ev;
}

/**
 * The label code of each class for the predictions: `--label-table` (a dataset.json's label table), else the source
 * package's codes, else the class indices. A table that does not fit the model is refused.
 */
async function predictionCodes(o: AdaptOpts, stats: SourceStats, numClasses: number): Promise<number[]> {
  const fromStats = packageLabelCodes(stats);
  if (o.labelTable === undefined) return fromStats;
  const codes = await readLabelCodes(o.labelTable);
  if (codes.length !== numClasses) throw new AdaptError('BAD_OPTION', `--label-table ${o.labelTable} lists ${codes.length} label codes, the model predicts ${numClasses} classes`);
  if (stats.labelCodes !== undefined && codes.join() !== fromStats.join()) {
    getLogger().warn({ code: 'LABEL_CODES_OVERRIDDEN', labelTable: o.labelTable }, `adapt: --label-table ${o.labelTable} replaces the source package's label codes (${fromStats.join(', ')}) with ${codes.join(', ')}`);
  }
  return codes;
}

/** Writes the adapted model, one NIfTI prediction per target case in its input geometry (and codes), and the report. */
async function writeOutputs(o: AdaptOpts, unet: UNet, target: UnlabeledSiteDataset, codes: readonly number[], report: AdaptReport, evals: { before?: SegmentationEvaluation; after?: SegmentationEvaluation; scored?: LabelledSubset }): Promise<void> {
  // A fitted input curve is part of the adapted model: it is saved next to it and applied before predicting.
  const images = report.inputCurve ? applyCurve(report.inputCurve, target.dataset) : target.dataset;
  const predictions = predictLabels(unet, images, Number(o.batchSize));
  await mkdir(join(o.out, 'predictions'), { recursive: true });
  await saveModel(unet, join(o.out, 'model'));
  if (report.inputCurve) await saveCurve(report.inputCurve, join(o.out, 'model', INPUT_CURVE_FILE));
  const px = images.height * images.width;
  for (const c of target.cases) {
    const vol = reassembleLabelVolume(predictions.subarray(c.start * px, (c.start + c.count) * px), images.height, images.width, c);
    const like = target.loaded.cases.find((lc) => lc.id === c.caseId)!.image;
    await writePrediction(join(o.out, 'predictions', `${c.caseId}.nii.gz`), vol, like, codes);
  }
  const metrics = (ev?: SegmentationEvaluation) => ev && { summary: ev.summary, perCase: ev.perCase };
  const cases = { target: target.cases.map((c) => c.caseId), unscored: evals.scored?.unscoredCases ?? [] };
  await writeFile(join(o.out, 'adapt-report.json'), JSON.stringify({ method: o.method, report, cases, labelCodes: codes, before: metrics(evals.before), after: metrics(evals.after) }, null, 2));
}

/** (dp) What privacy guarantee the source statistics package carries (its `privacy` block), in one line. */
export function sourceStatsGuarantee(stats: SourceStats): string {
  const p = stats.privacy;
  if (!p) return 'source statistics: no differential-privacy guarantee (released without DP)';
  return `source statistics: (${p.epsilon.toFixed(3)}, ${p.delta})-DP per ${p.unit} (${p.mechanism} noise, multiplier ${p.noiseMultiplier.toFixed(3)}); the run that released them had spent epsilon ${p.runEpsilon.toFixed(3)} in total`;
}

async function runAdapt(o: AdaptOpts): Promise<void> {
  await initEngine();
  if (!isAdaptMethod(o.method)) throw new AdaptError('UNKNOWN_METHOD', `unknown --method '${o.method}'; use one of ${ADAPT_METHODS.join(', ')}`);
  const unet = await loadModelFromPath(o.model);
  const stats = await loadSourceStats(o.sourceStats);
  console.log(sourceStatsGuarantee(stats));
  const codes = await predictionCodes(o, stats, unet.config.numClasses);
  const target = await loadTarget(o.data, inputSize(o, unet));
  const scored = o.evalLabels === undefined ? undefined : await matchEvalLabels(o.evalLabels, target, unet.config.numClasses);
  const before = evaluate(unet, scored, 'before');
  for (const e of ADAPTER_EXTRAS) if (o[e.key] && !o.inputAdapter) throw new AdaptError('BAD_OPTION', `${e.flag} ${e.what}: give it with --input-adapter`);
  if (o.polarityCheck && o.inputAdapter) throw new AdaptError('BAD_OPTION', 'give --polarity-check or --input-adapter, not both (the polarity check is the adapter with two knots)');
  const opts = {
    seed: Number(o.seed),
    batchSize: Number(o.batchSize),
    ...(o.epochs ? { epochs: Number(o.epochs) } : {}),
    ...(o.polarityCheck ? { inputPolarities: [1, -1] } : {}),
    ...(o.inputAdapter ? { inputAdapter: adapterOptions(o) } : {}),
    // The do-no-harm safeguard is on unless --no-safeguard (commander sets `safeguard: false`).
    safeguard: o.safeguard !== false,
    onProgress: (s: number, t: number, l: number) => process.stderr.write(`\rstep ${s}/${t} loss ${l.toFixed(4)}   `),
  };
  let report: AdaptReport;
  if (o.labelled !== undefined) {
    if (o.method !== 'mean-teacher') throw new AdaptError('BAD_OPTION', `--labelled (few-label mode) runs the mean teacher: use --method mean-teacher, not ${o.method}`);
    const { dataset: labelled } = await loadSiteDataset(o.labelled, { size: [target.dataset.height, target.dataset.width], numClasses: unet.config.numClasses });
    report = adaptWithLabels(unet, target.dataset, labelled, stats, opts);
  } else report = adapt(o.method, unet, target.dataset, stats, opts);
  process.stderr.write('\n');
  if (report.safeguard && !report.safeguard.keep) console.log(fallbackNote(report.safeguard));
  const after = evaluate(unet, scored, 'after ', report.inputCurve);
  await writeOutputs(o, unet, target, codes, report, { before, after, scored });
  console.log(`adapted model -> ${join(o.out, 'model')}; predictions -> ${join(o.out, 'predictions')} (${target.cases.length} case(s)); ${report.notes.join('; ')}`);
  unet.dispose();
}

export function registerAdaptCommands(program: Command): void {
  program
    .command('adapt')
    .description('adapt a federated model to unlabeled target scans, source-free')
    .requiredOption('--model <path>', 'model folder (saveModel format) or a final-weights.fsws written by the coordinator')
    .requiredOption('--source-stats <file>', 'source statistics package (JSON)')
    .requiredOption('--method <name>', `one of ${ADAPT_METHODS.join(', ')}`)
    .requiredOption('--data <dir>', 'target scans: a folder of NIfTI images, images/ (images/X/ = case X as a DICOM series), a Decathlon/nnU-Net folder (imagesTr/ and imagesTs/), or a bare DICOM folder (each series a case); labels are never read')
    .requiredOption('--out <dir>', 'output directory: adapted model, predictions, report')
    .option('--eval-labels <dir>', 'labelled copy of the target dataset, used only to score before/after (cases matched by id)')
    .option('--size <px>', 'slice size (default: the model input size, else 64)')
    .option('--seed <n>', 'adaptation seed', '1')
    .option('--epochs <n>', 'passes over the target data (method default if omitted)')
    .option('--batch-size <n>', 'batch size', '8')
    .option('--label-table <dataset.json>', "the source's label table (a dataset.json or its folder): predictions are written with its codes (default: the source package's codes, else class indices)")
    .option('--polarity-check', 'label-free input polarity check first: keep the source model or its negated-input twin, whichever is less uncertain on the target (the input adapter with two knots)')
    .option('--input-adapter', `label-free input adapter first: an intensity curve fitted in front of the frozen model so that the target matches the source BN statistics (input-adapter.ts); saved as model/${'input-curve.json'} and applied to the predictions`)
    .option('--wide-search', 'with --input-adapter: also search 256 random curves (the best refined) and keep the best one only if it matches the source statistics better AND leaves the predictions less uncertain than the default search\'s pick (input-adapter.ts, WideSearchOptions); about twice the adapter\'s time')
    .option('--denoise', 'with --input-adapter: also choose a Gaussian pre-filter (sigma 0, 0.5, 1 or 1.5 px) in front of the curve by the same BN-statistics objective, for noisy scanners; saved with the curve (input-adapter.ts, DenoiseOptions)')
    .option('--band-permutations', 'with --input-adapter: also try every order of the target\'s intensity bands (multi-level Otsu, 23 orders for 4 classes) as starts, for a scanner whose sequence reorders the tissues\' contrast; the best order is kept only if it matches the source statistics better AND leaves the predictions less uncertain than the default search\'s pick (band-permutation.ts); about 1.8x the adapter\'s time')
    .option('--bias-correction', 'with --input-adapter: first correct each case for a smooth intensity-inhomogeneity (bias) field, label-free, by minimising the entropy of its log-intensity histogram; refitted on each image and saved with the curve (bias-correction.ts)')
    .option('--no-safeguard', 'turn off the do-no-harm safeguard (on by default: the model is scored before and after label-free, entropy and perturbation consistency, and the unadapted model is kept when the adaptation looks harmful; safeguard.ts)')
    .option('--labelled <dir>', 'few-label mode (with --method mean-teacher): a labelled dataset folder of some target cases, used with the supervised loss')
    .action(runAdapt);

  program
    .command('source-stats')
    .description("compute a source site's statistics package (BN moments, per-class latent moments) from labelled data")
    .requiredOption('--model <path>', 'model folder or final-weights.fsws')
    .requiredOption('--data <dir>', 'labelled dataset folder (Decathlon/nnU-Net or image/label pairs)')
    .requiredOption('--out <file>', 'output JSON file')
    .option('--size <px>', 'slice size (default: the model input size, else 64)')
    .option('--confidence <p>', 'max-softmax threshold for confident pixels', '0.97')
    .action(async (o: { model: string; data: string; out: string; size?: string; confidence: string }) => {
      await initEngine();
      const unet = await loadModelFromPath(o.model);
      const { dataset: ds, loaded, labelCodes } = await loadSiteDataset(o.data, { size: inputSize(o, unet), skipBad: true });
      for (const p of loaded.problems) getLogger().warn({ code: p.code, file: p.file, caseId: p.caseId }, `source-stats: skipped case: ${p.message}`);
      const stats = computeSourceStats(unet, ds, { confidence: Number(o.confidence), ...(labelCodes ? { labelCodes } : {}) });
      await saveSourceStats(stats, o.out);
      console.log(`source statistics of ${ds.n} slices -> ${o.out} (confident pixels per class: ${stats.classes.map((c) => c.confident.count).join(', ')})`);
      unet.dispose();
    });
}
