/**
 * The one scorer of the site agent: predicted label maps against truth, volume by volume, with site-agent/metrics
 * (Dice, IoU, HD95, ASSD in mm, MONAI semantics). Training-time validation (client/unet-trainer), `fedsfda adapt`'s
 * --eval-labels and the SFDA benchmarks all score through here, so their numbers mean the same thing.
 */
import type { ImageSlices } from '../data/index.ts';
import { aggregateCases, computeMetrics, type AggregateResult, type CaseMetrics } from '../metrics/index.ts';
import { runSteps, runStepsYielding } from '../training/index.ts';

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

/**
 * What the scorer needs to know about the slices behind a prediction: the layout fields of `ImageSlices` (so a
 * SliceDataset or adapt's UnlabeledSlices fits); without `sliceThickness` every slice is scored on its own in 2D.
 */
export type SliceLayout = Pick<ImageSlices, 'n' | 'height' | 'width' | 'spacing' | 'caseIds' | 'sliceThickness'>;

export interface VolumeEvaluation extends AggregateResult {
  /** One entry per scored unit: a volume when the slice thickness is known, else a slice (`<case>#<slice in case>`). */
  readonly cases: { readonly caseId: string; readonly metrics: CaseMetrics }[];
}

/**
 * Scores `pred` against `labels` (both n*H*W). Volumes are 3D stacks [slices, rows, cols] with spacing
 * [sliceThickness, row, col] when the thickness is known; otherwise each slice is scored in 2D (surface distances
 * across slices would need a thickness we do not have).
 */
export function scoreVolumes(pred: Uint8Array, labels: Uint8Array, layout: SliceLayout, numClasses: number): VolumeEvaluation {
  return runSteps(scorePass(pred, labels, layout, numClasses));
}

/** `scoreVolumes` giving the event loop a turn after every scored volume (or slice): the site agent's evaluation. */
export function scoreVolumesAsync(pred: Uint8Array, labels: Uint8Array, layout: SliceLayout, numClasses: number): Promise<VolumeEvaluation> {
  return runStepsYielding(scorePass(pred, labels, layout, numClasses));
}

function* scorePass(pred: Uint8Array, labels: Uint8Array, layout: SliceLayout, numClasses: number): Generator<void, VolumeEvaluation, void> {
  const px = layout.height * layout.width;
  const expected = layout.n * px;
  if (pred.length !== expected || labels.length !== expected) {
    throw new RangeError(`scoreVolumes: prediction (${pred.length}) and labels (${labels.length}) must both hold n*h*w = ${expected} values`);
  }
  const cases: { caseId: string; metrics: CaseMetrics }[] = [];
  const inPlane = [layout.spacing[0], layout.spacing[1]];
  for (const g of groupByCase(layout.caseIds.slice(0, layout.n))) {
    if (layout.sliceThickness !== undefined) {
      const p = new Uint8Array(g.slices.length * px);
      const t = new Uint8Array(g.slices.length * px);
      g.slices.forEach((s, k) => {
        p.set(pred.subarray(s * px, (s + 1) * px), k * px);
        t.set(labels.subarray(s * px, (s + 1) * px), k * px);
      });
      const dims = [g.slices.length, layout.height, layout.width];
      cases.push({ caseId: g.caseId, metrics: computeMetrics(p, t, dims, [layout.sliceThickness, ...inPlane], numClasses) });
      yield;
    } else {
      for (const [k, s] of g.slices.entries()) {
        const p = pred.subarray(s * px, (s + 1) * px);
        const t = labels.subarray(s * px, (s + 1) * px);
        cases.push({ caseId: `${g.caseId}#${k}`, metrics: computeMetrics(p, t, [layout.height, layout.width], inPlane, numClasses) });
        yield;
      }
    }
  }
  return { ...aggregateCases(cases.map((c) => c.metrics)), cases };
}
