/**
 * The source statistics package: everything a new site receives besides the model, and nothing from which a source
 * image could be read back. All fields are sufficient statistics (counts, sums, sums of squares / outer products),
 * so packages from several sites are pooled by plain addition — which secure aggregation can do on masked values.
 * - BN: per layer, per channel, the count, Σx and Σx² of the layer's input over source pixels (inference mode).
 * - Latent: per class, moments of the features before the 1x1 classifier on pixels where ground truth = prediction
 *   = c and max softmax > `confidence` (Stan & Rostami, MedIA 2024, sec. 3.2; 0.97 in the authors' code), plus the
 *   moments over all pixels labelled c as a fallback when a class has too few confident pixels.
 */
import { readFile, writeFile } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs-core';
import { describeFirstIssue } from '../../protocol/common/index.ts';
import { batchNormTensorName, SOURCE_STATS_KIND, SOURCE_STATS_VERSION, SourceStatsSchema, type BnMoments, type SourceStats } from '../../protocol/contracts/index.ts';
import type { SliceDataset } from '../data/index.ts';
import type { UNet } from '../model/index.ts';
import { runSteps, runStepsYielding } from '../training/index.ts';
import { AdaptError } from './adapt-error.ts';
import { disposeStats, epochBatches, imageBatch } from './batching.ts';
import { accumulateMoments, addMoments, emptyMoments, symmetrizeMoments, type LatentMoments } from './gaussian.ts';

// The package's schema is a contract shared with the coordinator (protocol/contracts/source-stats.ts).
export { SOURCE_STATS_VERSION, SourceStatsSchema, type SourceStats } from '../../protocol/contracts/index.ts';

export interface SourceStatsOptions {
  readonly batchSize?: number;
  /** Max-softmax threshold for a pixel to count as confident (default 0.97, as in Stan & Rostami's code). */
  readonly confidence?: number;
  /** The source's label code of each class (SiteDataset.labelCodes); recorded in the package unless class k is code k. */
  readonly labelCodes?: readonly number[];
  /**
   * Clip every pixel's latent feature vector to this L2 norm before its moments are accumulated (differentially
   * private statistics bound each pixel's contribution this way: protocol/privacy/dp-source-stats.ts). Off by default.
   */
  readonly featureClip?: number;
}

/** Class k's label code in a package (k itself when the package records none). */
export function packageLabelCodes(stats: SourceStats): number[] {
  return stats.labelCodes ? [...stats.labelCodes] : Array.from({ length: stats.numClasses }, (_, k) => k);
}

/** Per-layer mean and (population) variance from the pooled BN moments. */
export function bnMeanVar(stats: SourceStats): Map<string, { mean: Float64Array; variance: Float64Array }> {
  const out = new Map<string, { mean: Float64Array; variance: Float64Array }>();
  for (const [layer, m] of Object.entries(stats.bn)) {
    const c = m.sum.length;
    const mean = new Float64Array(c);
    const variance = new Float64Array(c);
    for (let k = 0; k < c; k++) {
      mean[k] = m.sum[k] / m.count;
      variance[k] = Math.max(0, m.sumSq[k] / m.count - mean[k] * mean[k]);
    }
    out.set(layer, { mean, variance });
  }
  return out;
}

/** Source class priors (fraction of labelled pixels per class). */
export function classPriors(stats: SourceStats): Float64Array {
  const total = stats.classes.reduce((p, c) => p + c.labelCount, 0);
  return Float64Array.from(stats.classes, (c) => (total > 0 ? c.labelCount / total : 1 / stats.numClasses));
}

/**
 * Computes one site's package from its labelled data with the (federated) model in inference mode.
 * @example
 * const stats = computeSourceStats(unet, siteData);
 * await saveSourceStats(stats, 'source-stats.json');
 */
export function computeSourceStats(unet: UNet, data: SliceDataset, opts: SourceStatsOptions = {}): SourceStats {
  return runSteps(sourceStatsPass(unet, data, opts));
}

/** `computeSourceStats` giving the event loop a turn after every batch (a site agent answers heartbeats meanwhile); same result. */
export function computeSourceStatsAsync(unet: UNet, data: SliceDataset, opts: SourceStatsOptions = {}): Promise<SourceStats> {
  return runStepsYielding(sourceStatsPass(unet, data, opts));
}

/** The pass itself, one `yield` per batch (run by the two above, and by the DP statistics per privacy unit). */
export function* sourceStatsPass(unet: UNet, data: SliceDataset, opts: SourceStatsOptions): Generator<void, SourceStats, void> {
  const confidence = opts.confidence ?? 0.97;
  if (!(confidence > 0 && confidence < 1)) throw new AdaptError('BAD_OPTION', `confidence must be in (0, 1), got ${confidence}`);
  if (data.numClasses !== unet.config.numClasses) {
    throw new AdaptError('STATS_MISMATCH', `data has ${data.numClasses} classes, the model ${unet.config.numClasses}`);
  }
  const k = unet.config.numClasses;
  const dim = unet.config.baseChannels;
  for (let i = 0; i < data.labels.length; i++) {
    if (data.labels[i] >= k) throw new AdaptError('STATS_MISMATCH', `label ${data.labels[i]} at pixel ${i} is not < numClasses=${k}`);
  }
  const bn: Record<string, BnMoments> = {};
  const classes = Array.from({ length: k }, () => ({ labelCount: 0, confident: emptyMoments(dim), labelled: emptyMoments(dim) }));
  const px = data.height * data.width;
  for (const idx of epochBatches(data.n, opts.batchSize ?? 8, null)) {
    const x = imageBatch(data, idx);
    const r = unet.forward(x, { bn: 'running', collectStats: true });
    const count = idx.length * px;
    for (const [layer, s] of r.batchStats) {
      const mean = s.mean.dataSync();
      const variance = s.variance.dataSync();
      const acc = (bn[layer] ??= { count: 0, sum: new Array<number>(mean.length).fill(0), sumSq: new Array<number>(mean.length).fill(0) });
      acc.count += count;
      for (let c = 0; c < mean.length; c++) {
        acc.sum[c] += mean[c] * count;
        acc.sumSq[c] += (variance[c] + mean[c] * mean[c]) * count;
      }
    }
    const [probMax, pred] = tf.tidy(() => {
      const p = tf.softmax(r.logits);
      return [tf.max(p, -1), tf.argMax(p, -1)];
    });
    const pm = probMax.dataSync();
    const pr = pred.dataSync();
    const lat = clipRows(r.latent.dataSync() as Float32Array, dim, opts.featureClip);
    const n = idx.length * px;
    const truth = new Uint8Array(n);
    idx.forEach((s, i) => truth.set(data.labels.subarray(s * px, (s + 1) * px), i * px));
    const selConf = new Uint8Array(n);
    const selLab = new Uint8Array(n);
    for (let c = 0; c < k; c++) {
      let any = false;
      for (let i = 0; i < n; i++) {
        selLab[i] = truth[i] === c ? 1 : 0;
        selConf[i] = selLab[i] && pr[i] === c && pm[i] > confidence ? 1 : 0;
        if (selLab[i]) any = true;
      }
      if (!any) continue;
      accumulateMoments(classes[c].labelled, lat, dim, selLab);
      accumulateMoments(classes[c].confident, lat, dim, selConf);
    }
    for (let i = 0; i < n; i++) classes[truth[i]].labelCount++;
    for (const t of [x, r.logits, r.latent, probMax, pred]) t.dispose();
    disposeStats(r.batchStats);
    yield;
  }
  for (const c of classes) {
    symmetrizeMoments(c.confident, dim);
    symmetrizeMoments(c.labelled, dim);
  }
  const codes = opts.labelCodes;
  if (codes !== undefined && codes.length !== k) throw new AdaptError('STATS_MISMATCH', `${codes.length} label codes for a ${k}-class model`);
  const labelCodes = codes && codes.some((c, i) => c !== i) ? { labelCodes: [...codes] } : {};
  return { kind: SOURCE_STATS_KIND, version: SOURCE_STATS_VERSION, numClasses: k, latentDim: dim, confidence, numSites: 1, bn, ...labelCodes, classes };
}

/** `rows` (n x dim) with every row scaled to L2 norm <= bound (a copy; the input itself when there is no bound). */
function clipRows(rows: Float32Array, dim: number, bound: number | undefined): Float32Array {
  if (bound === undefined) return rows;
  if (!(bound > 0)) throw new AdaptError('BAD_OPTION', `featureClip must be > 0, got ${bound}`);
  const out = Float32Array.from(rows);
  for (let o = 0; o < out.length; o += dim) {
    let s = 0;
    for (let i = 0; i < dim; i++) s += out[o + i] * out[o + i];
    const n = Math.sqrt(s);
    if (n > bound) {
      const f = (bound / n) * (1 - 1e-6);
      for (let i = 0; i < dim; i++) out[o + i] *= f;
    }
  }
  return out;
}

function copyMoments(m: LatentMoments): LatentMoments {
  return { count: m.count, sum: [...m.sum], sumOuter: [...m.sumOuter] };
}

/** Sums packages from several sites (what secure aggregation computes without revealing any single one). */
export function poolSourceStats(list: readonly SourceStats[]): SourceStats {
  if (list.length === 0) throw new AdaptError('STATS_MISMATCH', 'poolSourceStats needs at least one package');
  const first = list[0];
  const out: SourceStats = {
    ...first,
    numSites: 0,
    bn: Object.fromEntries(Object.entries(first.bn).map(([l, m]) => [l, { count: 0, sum: m.sum.map(() => 0), sumSq: m.sumSq.map(() => 0) }])),
    classes: first.classes.map(() => ({ labelCount: 0, confident: emptyMoments(first.latentDim), labelled: emptyMoments(first.latentDim) })),
  };
  for (const s of list) {
    if (s.numClasses !== first.numClasses || s.latentDim !== first.latentDim || s.confidence !== first.confidence) {
      throw new AdaptError('STATS_MISMATCH', 'packages differ in numClasses, latentDim or confidence');
    }
    if (packageLabelCodes(s).join() !== packageLabelCodes(first).join()) {
      throw new AdaptError('STATS_MISMATCH', `packages store their classes as different label codes (${packageLabelCodes(first).join(', ')} vs ${packageLabelCodes(s).join(', ')}); the sites must share one label table`);
    }
    const layers = Object.keys(s.bn);
    if (layers.length !== Object.keys(first.bn).length || layers.some((l) => out.bn[l] === undefined || out.bn[l].sum.length !== s.bn[l].sum.length)) {
      throw new AdaptError('STATS_MISMATCH', 'packages differ in BN layers or channel counts');
    }
    out.numSites += s.numSites;
    for (const l of layers) {
      const o = out.bn[l];
      o.count += s.bn[l].count;
      s.bn[l].sum.forEach((v, i) => (o.sum[i] += v));
      s.bn[l].sumSq.forEach((v, i) => (o.sumSq[i] += v));
    }
    s.classes.forEach((c, i) => {
      out.classes[i].labelCount += c.labelCount;
      addMoments(out.classes[i].confident, copyMoments(c.confident));
      addMoments(out.classes[i].labelled, copyMoments(c.labelled));
    });
  }
  return out;
}

/** Checks a package against the model it will adapt (layers, channels, classes, latent size). */
export function checkStatsMatchModel(stats: SourceStats, unet: UNet): void {
  if (stats.numClasses !== unet.config.numClasses || stats.latentDim !== unet.config.baseChannels) {
    throw new AdaptError(
      'STATS_MISMATCH',
      `source stats are for ${stats.numClasses} classes / latent ${stats.latentDim}, the model has ${unet.config.numClasses} / ${unet.config.baseChannels}`,
    );
  }
  for (const layer of unet.bnLayers) {
    const m = stats.bn[layer];
    const v = unet.bnStats.get(batchNormTensorName(layer, 'mean'));
    if (m === undefined || v === undefined || m.sum.length !== v.shape[0]) {
      throw new AdaptError('STATS_MISMATCH', `source stats have no matching entry for BN layer '${layer}'`);
    }
  }
}

export async function saveSourceStats(stats: SourceStats, file: string): Promise<void> {
  await writeFile(file, JSON.stringify(stats));
}

/** Reads and validates a package; a wrong version or shape is refused with the offending field named. */
export async function loadSourceStats(file: string): Promise<SourceStats> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new AdaptError('STATS_FILE_INVALID', `cannot read source stats ${file}: ${(e as Error).message}`);
  }
  return parseSourceStats(raw, file);
}

export function parseSourceStats(raw: unknown, where = 'source stats'): SourceStats {
  const version = (raw as { version?: unknown } | null)?.version;
  if (typeof raw === 'object' && raw !== null && version !== SOURCE_STATS_VERSION) {
    throw new AdaptError('STATS_VERSION', `${where}: version ${String(version)} is not supported (expected ${SOURCE_STATS_VERSION})`);
  }
  const r = SourceStatsSchema.safeParse(raw);
  if (!r.success) throw new AdaptError('STATS_FILE_INVALID', `${where}: ${describeFirstIssue(r.error)}`);
  return r.data;
}
