/**
 * A site's differentially private contribution to the shared statistics (protocol/privacy/dp-statistics.ts and
 * dp-source-stats.ts hold the formulas, bounds and citations): the training split is cut into privacy units (cases or
 * slices), every unit's statistics are computed on its own (latent features clipped per pixel), normalised by the
 * unit's pixel count, clipped to the public bound Delta, summed, and scaled by s = 1 / (U Delta). The noise is added
 * later: by this site's discrete Gaussian share at masking (distributed) or by the coordinator (central).
 */
import {
  classHistogramUnitVector,
  privacyUnits,
  sourceStatsUnitBound,
  sourceStatsUnitVector,
  statisticsScale,
  sumClippedUnits,
  CLASS_HISTOGRAM_UNIT_BOUND,
  type StatisticsDpRequest,
  type UnitSum,
} from '../../protocol/privacy/index.ts';
import type { SliceDataset } from '../data/index.ts';
import type { UNet } from '../model/index.ts';
import { runSteps, runStepsYielding } from '../training/index.ts';
import { AdaptError } from './adapt-error.ts';
import { sourceStatsPass } from './source-stats.ts';

/** The slices `idx` of `ds` as their own dataset (copies). */
function selectSlices(ds: SliceDataset, idx: readonly number[]): SliceDataset {
  const px = ds.height * ds.width;
  const images = new Float32Array(idx.length * px * ds.channels);
  const labels = new Uint8Array(idx.length * px);
  idx.forEach((s, i) => {
    images.set(ds.images.subarray(s * px * ds.channels, (s + 1) * px * ds.channels), i * px * ds.channels);
    labels.set(ds.labels.subarray(s * px, (s + 1) * px), i * px);
  });
  return { n: idx.length, height: ds.height, width: ds.width, channels: ds.channels, images, labels, numClasses: ds.numClasses, spacing: ds.spacing, caseIds: idx.map((s) => ds.caseIds[s]) };
}

function unitsOf(data: SliceDataset, dp: StatisticsDpRequest): number[][] {
  const units = privacyUnits(data.caseIds, dp.unit);
  if (units.length > dp.maxUnits) {
    throw new AdaptError('BAD_OPTION', `${units.length} ${dp.unit}s exceed the public bound maxUnitsPerSite = ${dp.maxUnits}: this site cannot take part in the DP statistics`);
  }
  return units;
}

/**
 * The source-statistics vectors (names of protocol/source-stats-vectors.ts) of one site under DP, in scaled units.
 * @example
 * const { values } = dpSourceStatsVectors(unet, train, dpFromConfig, 0.97); // then masked and summed
 */
export function dpSourceStatsVectors(unet: UNet, data: SliceDataset, dp: StatisticsDpRequest, confidence: number): UnitSum {
  return runSteps(dpSourceStatsPass(unet, data, dp, confidence));
}

/** `dpSourceStatsVectors` giving the event loop a turn after every batch (a site agent answers heartbeats meanwhile); same result. */
export function dpSourceStatsVectorsAsync(unet: UNet, data: SliceDataset, dp: StatisticsDpRequest, confidence: number): Promise<UnitSum> {
  return runStepsYielding(dpSourceStatsPass(unet, data, dp, confidence));
}

function* dpSourceStatsPass(unet: UNet, data: SliceDataset, dp: StatisticsDpRequest, confidence: number): Generator<void, UnitSum, void> {
  const units = unitsOf(data, dp);
  const clips = { featureClip: dp.featureClip, activationClip: dp.activationClip };
  const px = data.height * data.width;
  const vectors = [];
  for (const idx of units) {
    const stats = yield* sourceStatsPass(unet, selectSlices(data, idx), { confidence, featureClip: dp.featureClip });
    vectors.push(sourceStatsUnitVector(stats, idx.length * px, clips));
  }
  const bound = sourceStatsUnitBound(unet.bnLayers.length);
  return sumClippedUnits(vectors, bound, statisticsScale(bound, dp.maxUnits), dp.maxUnits);
}

/**
 * The class-histogram vectors of one site under DP (scaled units): per-unit class fractions summed, the site's class
 * distribution p and p^2 (site-level, sensitivity sqrt 2 each), and hist/sites = 1 (public, not noised).
 */
export function dpClassHistogramVectors(data: SliceDataset, dp: StatisticsDpRequest): UnitSum {
  return runSteps(dpClassHistogramPass(data, dp));
}

/** `dpClassHistogramVectors` giving the event loop a turn after every privacy unit (a site agent answers heartbeats meanwhile); same result. */
export function dpClassHistogramVectorsAsync(data: SliceDataset, dp: StatisticsDpRequest): Promise<UnitSum> {
  return runStepsYielding(dpClassHistogramPass(data, dp));
}

function* dpClassHistogramPass(data: SliceDataset, dp: StatisticsDpRequest): Generator<void, UnitSum, void> {
  const units = unitsOf(data, dp);
  const px = data.height * data.width;
  const k = data.numClasses;
  const site = new Array<number>(k).fill(0);
  const vectors = [];
  for (const idx of units) {
    const counts = new Array<number>(k).fill(0);
    for (const s of idx) for (let i = s * px; i < (s + 1) * px; i++) counts[data.labels[i]]++;
    counts.forEach((c, j) => (site[j] += c));
    vectors.push(classHistogramUnitVector(counts));
    yield;
  }
  const scale = statisticsScale(CLASS_HISTOGRAM_UNIT_BOUND, dp.maxUnits);
  // Per-unit part clipped to 1 (its own bound); the site-level parts' sqrt 2 + sqrt 2 complete Delta^2 = 5.
  const sum = sumClippedUnits(vectors, 1, scale, dp.maxUnits);
  const total = site.reduce((a, b) => a + b, 0);
  const p = site.map((x) => x / total);
  return {
    ...sum,
    values: { ...sum.values, 'hist/p': Float32Array.from(p, (x) => x * scale), 'hist/p2': Float32Array.from(p, (x) => x * x * scale), 'hist/sites': Float32Array.of(1) },
  };
}
