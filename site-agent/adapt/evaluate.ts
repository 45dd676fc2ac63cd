/**
 * Evaluation of a model on labelled target data, per volume: slices are grouped by `caseIds` (in order) and, when a
 * slice thickness is known, scored as one 3D volume [slices, H, W] with spacing [thickness, row, col] mm; otherwise
 * each slice is scored in 2D. Labels enter here only — never the adaptation code path.
 */
import { aggregateCases, computeMetrics, type AggregateResult, type CaseMetrics } from '../metrics/index.ts';
import type { UNet } from '../model/index.ts';
import { predictLabels } from './batching.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';

export interface SegmentationEvaluation {
  readonly perCase: { caseId: string; metrics: CaseMetrics }[];
  readonly summary: AggregateResult;
  /** Predicted labels of every slice (n * H * W). */
  readonly predictions: Uint8Array;
}

/** Scores given predictions against labels volume by volume. */
export function scorePredictions(
  images: UnlabeledSlices,
  pred: Uint8Array,
  labels: Uint8Array,
  numClasses: number,
  sliceThickness?: number,
): Omit<SegmentationEvaluation, 'predictions'> {
  const px = images.height * images.width;
  const perCase: { caseId: string; metrics: CaseMetrics }[] = [];
  let start = 0;
  while (start < images.n) {
    let end = start + 1;
    while (end < images.n && images.caseIds[end] === images.caseIds[start]) end++;
    const p = pred.subarray(start * px, end * px);
    const t = labels.subarray(start * px, end * px);
    if (sliceThickness !== undefined) {
      const dims = [end - start, images.height, images.width];
      perCase.push({ caseId: images.caseIds[start], metrics: computeMetrics(p, t, dims, [sliceThickness, ...images.spacing], numClasses) });
    } else {
      for (let s = 0; s < end - start; s++) {
        const m = computeMetrics(p.subarray(s * px, (s + 1) * px), t.subarray(s * px, (s + 1) * px), [images.height, images.width], [...images.spacing], numClasses);
        perCase.push({ caseId: `${images.caseIds[start]}#${s}`, metrics: m });
      }
    }
    start = end;
  }
  return { perCase, summary: aggregateCases(perCase.map((c) => c.metrics)) };
}

/** Predicts with running BN statistics and scores per volume. */
export function evaluateSegmentation(
  unet: UNet,
  images: UnlabeledSlices,
  labels: Uint8Array,
  sliceThickness?: number,
): SegmentationEvaluation {
  const predictions = predictLabels(unet, images);
  return { ...scorePredictions(images, predictions, labels, unet.config.numClasses, sliceThickness), predictions };
}
