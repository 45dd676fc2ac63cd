/**
 * A tiny shifted segmentation problem for the adaptation tests: nested rectangles (class 1 ring at intensity 0.5,
 * class 2 core at 1.0) on a 0 background with noise. The target scanner remaps intensities x -> a·x + b
 * (gain/offset drift), which wrecks an unadapted model's BN-normalised features but is recoverable without labels.
 */
import type { SliceDataset } from '../data/index.ts';
import { computeMetrics } from '../metrics/index.ts';
import { createUNet, type UNet } from '../model/index.ts';
import { trainLocal } from '../training/index.ts';
import { Rng } from '../../protocol/common/index.ts';
import { initEngine } from '../engine/index.ts';
import type { WeightSet } from '../../protocol/index.ts';
import { predictLabels } from './batching.ts';
import { computeSourceStats, type SourceStats } from './source-stats.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';

export function makeNestedBoxes(n: number, size: number, seed: number, gain = 1, offset = 0): SliceDataset {
  const rng = new Rng(seed);
  const px = size * size;
  const images = new Float32Array(n * px);
  const labels = new Uint8Array(n * px);
  for (let s = 0; s < n; s++) {
    const side = Math.floor(size / 2) + rng.int(Math.floor(size / 4) + 1);
    const r0 = rng.int(size - side + 1);
    const c0 = rng.int(size - side + 1);
    const inset = Math.max(1, Math.floor(side / 4));
    for (let r = 0; r < size; r++) {
      for (let c = 0; c < size; c++) {
        const outer = r >= r0 && r < r0 + side && c >= c0 && c < c0 + side;
        const inner = r >= r0 + inset && r < r0 + side - inset && c >= c0 + inset && c < c0 + side - inset;
        const label = inner ? 2 : outer ? 1 : 0;
        const clean = label === 2 ? 1 : label === 1 ? 0.5 : 0;
        images[s * px + r * size + c] = gain * (clean + 0.05 * rng.normal()) + offset;
        labels[s * px + r * size + c] = label;
      }
    }
  }
  return {
    n,
    height: size,
    width: size,
    channels: 1,
    images,
    labels,
    numClasses: 3,
    spacing: [1, 1],
    caseIds: Array.from({ length: n }, (_, i) => `box-${seed}-${i}`),
  };
}

/** Mean foreground Dice over slices (labels used for evaluation only). */
export function meanDice(unet: UNet, images: UnlabeledSlices, labels: Uint8Array, numClasses: number): number {
  const pred = predictLabels(unet, images);
  const px = images.height * images.width;
  let sum = 0;
  let n = 0;
  for (let s = 0; s < images.n; s++) {
    const m = computeMetrics(pred.subarray(s * px, (s + 1) * px), labels.subarray(s * px, (s + 1) * px), [images.height, images.width], [1, 1], numClasses);
    if (Number.isFinite(m.mean.dice)) {
      sum += m.mean.dice;
      n++;
    }
  }
  return sum / n;
}

export const TOY_SIZE = 12;
export const TOY_CONFIG = { inChannels: 1, numClasses: 3, baseChannels: 8, depth: 1 } as const;

/** Trains the tiny source model (~30 s on the pure-JS cpu backend of a loaded 2-core machine). */
export async function trainToySource(source: SliceDataset, seed = 3): Promise<UNet> {
  const unet = createUNet(TOY_CONFIG, seed);
  await trainLocal(unet, source, { epochs: 14, batchSize: 8, optimizer: 'adam', lr: 1e-2, loss: 'ce+dice', seed });
  return unet;
}

/** The source side most adaptation tests start from: the engine up, the toy U-Net trained on nested boxes (seed 1), its weights and statistics. */
export async function toySourceSetup(): Promise<{ unet: UNet; weights: WeightSet; stats: SourceStats }> {
  await initEngine();
  const source = makeNestedBoxes(16, TOY_SIZE, 1);
  const unet = await trainToySource(source);
  return { unet, weights: unet.getWeights(), stats: computeSourceStats(unet, source) };
}
