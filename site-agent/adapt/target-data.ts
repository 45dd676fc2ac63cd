/**
 * The new site's data for `fedsfda adapt`: every image of the target folder, read without its labels (a folder of
 * images, a Decathlon `imagesTs/`, a dataset whose labels are absent), and, only for scoring, the labels of a
 * separately given labelled copy matched to the target cases by case id.
 */
import { loadSiteDataset, loadUnlabeledSiteDataset, type UnlabeledSiteDataset } from '../data/index.ts';
import { getLogger } from '../../protocol/common/index.ts';
import { AdaptError } from './adapt-error.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';

/** Target slices whose labels are known: the scored subset of the target, in the target's order. */
export interface LabelledSubset {
  readonly images: UnlabeledSlices;
  readonly labels: Uint8Array;
  readonly sliceThickness?: number;
  /** The target's slice index of every subset slice. */
  readonly targetSlices: readonly number[];
  /** Target cases without a label in the labelled copy (not scored). */
  readonly unscoredCases: readonly string[];
}

/** Reads the target folder's images (labels never opened); bad images are skipped and logged. */
export async function loadTarget(dir: string, size: number): Promise<UnlabeledSiteDataset> {
  const target = await loadUnlabeledSiteDataset(dir, { size, skipBad: true });
  const log = getLogger();
  for (const p of target.loaded.problems) log.warn({ code: p.code, file: p.file, caseId: p.caseId }, `adapt: skipped target image: ${p.message}`);
  return target;
}

function subsetOf(images: UnlabeledSlices, slices: readonly number[]): UnlabeledSlices {
  const px = images.height * images.width * images.channels;
  const out = new Float32Array(slices.length * px);
  slices.forEach((s, i) => out.set(images.images.subarray(s * px, (s + 1) * px), i * px));
  return { ...images, n: slices.length, images: out, caseIds: slices.map((s) => images.caseIds[s]) };
}

/**
 * Loads `--eval-labels DIR` and pairs it with the target, case by case: a case is scored when the labelled copy
 * holds a case of the same id sliced into the same number of slices of the same volume shape.
 */
export async function matchEvalLabels(dir: string, target: UnlabeledSiteDataset, numClasses: number): Promise<LabelledSubset> {
  const size: [number, number] = [target.dataset.height, target.dataset.width];
  const lab = await loadSiteDataset(dir, { size, numClasses, skipBad: true });
  const byId = new Map(lab.cases.map((c) => [c.caseId, c]));
  const px = size[0] * size[1];
  const targetSlices: number[] = [];
  const labelParts: Uint8Array[] = [];
  const unscoredCases: string[] = [];
  for (const t of target.cases) {
    const l = byId.get(t.caseId);
    if (l === undefined) {
      unscoredCases.push(t.caseId);
      continue;
    }
    if (l.count !== t.count || l.dims.some((d, i) => d !== t.dims[i])) {
      throw new AdaptError('BAD_SHAPE', `--eval-labels ${dir}: case ${t.caseId} is ${l.dims.join('x')} (${l.count} slices) there but ${t.dims.join('x')} (${t.count} slices) in the target data`);
    }
    for (let s = 0; s < t.count; s++) targetSlices.push(t.start + s);
    labelParts.push(lab.dataset.labels.subarray(l.start * px, (l.start + l.count) * px));
  }
  if (targetSlices.length === 0) throw new AdaptError('BAD_SHAPE', `--eval-labels ${dir} holds none of the target cases (${target.cases.map((c) => c.caseId).join(', ')})`);
  const labels = new Uint8Array(targetSlices.length * px);
  let o = 0;
  for (const part of labelParts) {
    labels.set(part, o);
    o += part.length;
  }
  if (unscoredCases.length > 0) getLogger().warn({ code: 'UNSCORED_CASES', cases: unscoredCases }, `adapt: ${unscoredCases.length} target case(s) have no labels in ${dir} and are not scored`);
  const thickness = lab.dataset.sliceThickness;
  return { images: subsetOf(target.dataset, targetSlices), labels, ...(thickness !== undefined ? { sliceThickness: thickness } : {}), targetSlices, unscoredCases };
}
