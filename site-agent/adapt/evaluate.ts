/**
 * Evaluation of a model on labelled target data, per volume: slices are grouped by `caseIds` (in order) and, when a
 * slice thickness is known, scored as one 3D volume [slices, H, W] with spacing [thickness, row, col] mm; otherwise
 * each slice is scored in 2D. Labels enter here only — never the adaptation code path.
 */
import { scoreVolumes } from '../evaluation/index.ts';
import type { AggregateResult, CaseMetrics } from '../metrics/index.ts';
import type { UNet } from '../model/index.ts';
import { predictLabels } from './batching.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';

export interface SegmentationEvaluation {
  readonly perCase: { caseId: string; metrics: CaseMetrics }[];
  readonly summary: AggregateResult;
  /** Predicted labels of every slice (n * H * W). */
  readonly predictions: Uint8Array;
}

/** Scores given predictions against labels volume by volume, through the site agent's one scorer. */
export function scorePredictions(
  images: UnlabeledSlices,
  pred: Uint8Array,
  labels: Uint8Array,
  numClasses: number,
  sliceThickness?: number,
): Omit<SegmentationEvaluation, 'predictions'> {
  const scored = scoreVolumes(pred, labels, { ...images, sliceThickness }, numClasses);
  const { cases, ...summary } = scored;
  return { perCase: cases.map((c) => ({ caseId: c.caseId, metrics: c.metrics })), summary };
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
