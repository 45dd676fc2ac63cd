/**
 * Full evaluation of a model on a labelled split: predict every slice, regroup the slices into their
 * volumes, and score each volume with site-agent/metrics (Dice, IoU, HD95, ASSD in mm, MONAI semantics).
 */
import type { SliceDataset } from '../data/slice-dataset.ts';
import { aggregateCases, computeMetrics, type AggregateResult, type CaseMetrics } from '../metrics/index.ts';
import type { UNet } from '../model/unet.ts';
import { predict } from '../train/predict.ts';

export interface VolumeGroup {
  readonly caseId: string;
  /** Slice indices of this case in dataset order. */
  readonly slices: number[];
}

/** Groups slice indices by case id, keeping the first-seen order of cases and the dataset order within a case. */
export function groupByCase(caseIds: readonly string[]): VolumeGroup[] {
  const groups = new Map<string, number[]>();
  caseIds.forEach((id, i) => {
    const g = groups.get(id);
    if (g) g.push(i);
    else groups.set(id, [i]);
  });
  return [...groups].map(([caseId, slices]) => ({ caseId, slices }));
}

export interface VolumeEvaluation extends AggregateResult {
  /** One entry per scored unit (a volume when sliceThickness is known, else a slice). */
  readonly cases: { readonly caseId: string; readonly metrics: CaseMetrics }[];
}

/**
 * Scores predicted label maps against the dataset's labels. Volumes are 3D stacks [slices, rows, cols] with
 * spacing [sliceThickness, row, col] when the dataset knows its slice thickness; otherwise every slice is
 * scored on its own in 2D (surface distances across slices would need a thickness we do not have).
 */
export function scorePredictions(pred: Uint8Array, data: SliceDataset): VolumeEvaluation {
  const px = data.height * data.width;
  const cases: { caseId: string; metrics: CaseMetrics }[] = [];
  if (data.sliceThickness !== undefined) {
    for (const g of groupByCase(data.caseIds)) {
      const p = new Uint8Array(g.slices.length * px);
      const t = new Uint8Array(g.slices.length * px);
      g.slices.forEach((s, k) => {
        p.set(pred.subarray(s * px, (s + 1) * px), k * px);
        t.set(data.labels.subarray(s * px, (s + 1) * px), k * px);
      });
      const dims = [g.slices.length, data.height, data.width];
      const spacing = [data.sliceThickness, data.spacing[0], data.spacing[1]];
      cases.push({ caseId: g.caseId, metrics: computeMetrics(p, t, dims, spacing, data.numClasses) });
    }
  } else {
    for (let s = 0; s < data.n; s++) {
      const p = pred.subarray(s * px, (s + 1) * px);
      const t = data.labels.subarray(s * px, (s + 1) * px);
      const metrics = computeMetrics(p, t, [data.height, data.width], [data.spacing[0], data.spacing[1]], data.numClasses);
      cases.push({ caseId: `${data.caseIds[s]}#${s}`, metrics });
    }
  }
  return { ...aggregateCases(cases.map((c) => c.metrics)), cases };
}

/** Predicts with BN running statistics and scores per volume. */
export function evaluateVolumes(unet: UNet, data: SliceDataset, batchSize = 8): VolumeEvaluation {
  const pred = predict(unet, data.images, data.n, data.height, data.width, data.channels, batchSize);
  return scorePredictions(pred, data);
}
