/**
 * Volumes -> the 2D SliceDataset the model trains on: intensity normalisation, label remapping,
 * slice extraction along a chosen canonical axis, resize to the model input (bilinear images,
 * nearest labels), optional thinning of label-empty slices. Deterministic in `seed`.
 * `reassembleLabelVolume` inverts the slicing so predictions can be written back as NIfTI.
 */
import { Rng } from '../../util/rng.ts';
import { resizeBilinear, resizeNearest } from '../resize.ts';
import type { SliceDataset } from '../slice-dataset.ts';
import { DatasetError } from './dataset-error.ts';

export type Normalization =
  /** z-score with statistics from a mask: `nonzero` voxels (zeroed outside, as nnU-Net's use_mask_for_norm), the label foreground, or all voxels. */
  | { kind: 'zscore'; mask?: 'nonzero' | 'label' | 'all' }
  /** Clip to the [lower, upper] percentiles (default 0.5, 99.5) then z-score (the nnU-Net CT scheme, per case). */
  | { kind: 'percentile'; lower?: number; upper?: number }
  | { kind: 'none' };

export interface PreprocessOptions {
  /** Model input size: a square side or [height, width]. */
  size: number | readonly [number, number];
  /** Canonical (RAS) axis to slice along: 0 sagittal, 1 coronal, 2 axial (default). */
  axis?: 0 | 1 | 2;
  normalization?: Normalization;
  /** Source label value -> class index; values not listed are kept as they are. */
  labelMap?: Readonly<Record<number, number>>;
  /** Number of classes (default: largest class present + 1). */
  numClasses?: number;
  /** Fraction of label-empty slices to keep (default 1 = keep all); the choice is seeded. */
  emptySliceKeepRate?: number;
  seed?: number;
}

/** A volume ready for slicing (canonical order). */
export interface VolumeCase {
  readonly id: string;
  /** The (first) input channel. */
  readonly image: Float32Array;
  /** All input channels (image is channels[0]); absent for a one-channel case. Each is normalised on its own. */
  readonly channels?: readonly Float32Array[];
  readonly label: Uint8Array;
  readonly dims: readonly [number, number, number];
  readonly spacing: readonly [number, number, number];
}

/** Where each case's slices came from, for reassembling predictions. */
export interface CaseSlices {
  readonly caseId: string;
  readonly axis: 0 | 1 | 2;
  readonly dims: readonly [number, number, number];
  /** First dataset slice of this case and how many. */
  readonly start: number;
  readonly count: number;
  /** Source slice index (along `axis`) of each of the case's dataset slices. */
  readonly sourceIndex: readonly number[];
}

export interface PreprocessResult {
  readonly dataset: SliceDataset;
  readonly cases: readonly CaseSlices[];
  readonly warnings: readonly string[];
}

/** In-plane axes for a slicing axis: rows run along the higher remaining axis, columns along the lower. */
export function planeAxes(axis: 0 | 1 | 2): { rows: number; cols: number } {
  const rest = [0, 1, 2].filter((a) => a !== axis);
  return { rows: rest[1], cols: rest[0] };
}

function percentile(sorted: Float32Array, p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.round((p / 100) * (sorted.length - 1))));
  return sorted[i];
}

/** Normalises one volume in place (see Normalization). */
export function normalizeVolume(img: Float32Array, label: Uint8Array, n: Normalization): void {
  if (n.kind === 'none') return;
  let inMask: (i: number) => boolean = () => true;
  if (n.kind === 'percentile') {
    // A strided sample keeps the sort cheap on large volumes; percentiles barely move.
    const stride = Math.max(1, Math.floor(img.length / 1_000_000));
    const sample = new Float32Array(Math.ceil(img.length / stride));
    for (let i = 0, j = 0; i < img.length; i += stride, j++) sample[j] = img[i];
    sample.sort();
    const lo = percentile(sample, n.lower ?? 0.5);
    const hi = percentile(sample, n.upper ?? 99.5);
    for (let i = 0; i < img.length; i++) img[i] = img[i] < lo ? lo : img[i] > hi ? hi : img[i];
  } else if (n.mask === 'label') inMask = (i) => label[i] > 0;
  else if (n.mask !== 'all') inMask = (i) => img[i] !== 0;
  let cnt = 0;
  let sum = 0;
  for (let i = 0; i < img.length; i++) if (inMask(i)) {
    sum += img[i];
    cnt++;
  }
  if (cnt === 0) {
    // Empty mask (e.g. an all-zero image): fall back to whole-volume statistics.
    inMask = () => true;
    cnt = img.length;
    sum = img.reduce((s, v) => s + v, 0);
  }
  const mean = sum / cnt;
  let ss = 0;
  for (let i = 0; i < img.length; i++) if (inMask(i)) ss += (img[i] - mean) ** 2;
  const std = Math.sqrt(ss / cnt);
  const inv = std > 1e-8 ? 1 / std : 0;
  const zeroOutside = n.kind === 'zscore' && (n.mask ?? 'nonzero') === 'nonzero';
  for (let i = 0; i < img.length; i++) img[i] = zeroOutside && img[i] === 0 ? 0 : (img[i] - mean) * inv;
}

function extractSlice<T extends Float32Array | Uint8Array>(vol: T, dims: readonly number[], axis: 0 | 1 | 2, k: number, out: T): void {
  const strides = [1, dims[0], dims[0] * dims[1]];
  const { rows, cols } = planeAxes(axis);
  const base = k * strides[axis];
  let o = 0;
  for (let r = 0; r < dims[rows]; r++) {
    const rb = base + r * strides[rows];
    for (let c = 0; c < dims[cols]; c++) out[o++] = vol[rb + c * strides[cols]];
  }
}

/** Slices, normalises and resizes volumes into one SliceDataset. Images are copied, never mutated. */
export function volumesToSliceDataset(volumes: readonly VolumeCase[], opts: PreprocessOptions): PreprocessResult {
  const [H, W] = typeof opts.size === 'number' ? [opts.size, opts.size] : opts.size;
  if (![H, W].every((s) => Number.isInteger(s) && s >= 2 && s <= 4096)) throw new DatasetError('INVALID_OPTIONS', 'preprocess', `size must be integers in [2, 4096], got ${JSON.stringify(opts.size)}`);
  const axis = opts.axis ?? 2;
  if (![0, 1, 2].includes(axis)) throw new DatasetError('INVALID_OPTIONS', 'preprocess', `axis must be 0, 1 or 2, got ${String(axis)}`);
  const keep = opts.emptySliceKeepRate ?? 1;
  if (!(keep >= 0 && keep <= 1)) throw new DatasetError('INVALID_OPTIONS', 'preprocess', `emptySliceKeepRate must be in [0, 1], got ${keep}`);
  if (volumes.length === 0) throw new DatasetError('NO_CASES', 'preprocess', 'no volumes to slice');
  const norm = opts.normalization ?? { kind: 'zscore', mask: 'nonzero' };
  const rng = new Rng(opts.seed ?? 0);
  const { rows, cols } = planeAxes(axis);
  const imgs: Float32Array[] = [];
  const labs: Uint8Array[] = [];
  const caseIds: string[] = [];
  const cases: CaseSlices[] = [];
  const warnings: string[] = [];
  const spacings: Array<[number, number]> = [];
  const thick = new Set<number>();
  let maxClass = 0;
  let skipped = 0;
  const C = volumes[0].channels?.length ?? 1;
  for (const v of volumes) {
    const src = v.channels ?? [v.image];
    if (src.length !== C) throw new DatasetError('INVALID_OPTIONS', v.id, `${src.length} input channel(s), the first case has ${C}`);
    let lab = v.label;
    if (opts.labelMap) {
      lab = new Uint8Array(v.label.length);
      for (let i = 0; i < lab.length; i++) lab[i] = opts.labelMap[v.label[i]] ?? v.label[i];
    }
    const chans = src.map((c) => {
      const img = new Float32Array(c);
      normalizeVolume(img, lab, norm);
      return img;
    });
    const h0 = v.dims[rows];
    const w0 = v.dims[cols];
    const sImg = new Float32Array(h0 * w0);
    const sLab = new Uint8Array(h0 * w0);
    const sourceIndex: number[] = [];
    const start = caseIds.length;
    for (let k = 0; k < v.dims[axis]; k++) {
      extractSlice(lab, v.dims, axis, k, sLab);
      let empty = true;
      for (let i = 0; i < sLab.length; i++) {
        if (sLab[i] !== 0) {
          empty = false;
          if (sLab[i] > maxClass) maxClass = sLab[i];
        }
      }
      // Draw for every empty slice (kept or not) so that the stream, hence the choice, is reproducible.
      if (empty && keep < 1 && rng.next() >= keep) {
        skipped++;
        continue;
      }
      // NHWC: the channels of one pixel are adjacent.
      const px = H * W;
      const nhwc = new Float32Array(px * C);
      chans.forEach((img, ch) => {
        extractSlice(img, v.dims, axis, k, sImg);
        const plane = resizeBilinear(sImg, h0, w0, H, W);
        for (let i = 0; i < px; i++) nhwc[i * C + ch] = plane[i];
      });
      imgs.push(nhwc);
      labs.push(resizeNearest(sLab, h0, w0, H, W));
      caseIds.push(v.id);
      sourceIndex.push(k);
    }
    cases.push({ caseId: v.id, axis, dims: [...v.dims] as [number, number, number], start, count: caseIds.length - start, sourceIndex });
    spacings.push([(v.spacing[rows] * h0) / H, (v.spacing[cols] * w0) / W]);
    thick.add(+v.spacing[axis].toFixed(6));
  }
  const numClasses = opts.numClasses ?? maxClass + 1;
  if (maxClass >= numClasses) throw new DatasetError('INVALID_OPTIONS', 'preprocess', `label value ${maxClass} found but numClasses is ${numClasses} (use labelMap to remap)`);
  const n = imgs.length;
  const images = new Float32Array(n * H * W * C);
  const labels = new Uint8Array(n * H * W);
  for (let i = 0; i < n; i++) {
    images.set(imgs[i], i * H * W * C);
    labels.set(labs[i], i * H * W);
  }
  const mean = (k: 0 | 1): number => spacings.reduce((s, p) => s + p[k], 0) / spacings.length;
  const spacing: [number, number] = [mean(0), mean(1)];
  if (spacings.some((p) => Math.abs(p[0] - spacing[0]) > 0.01 * spacing[0] || Math.abs(p[1] - spacing[1]) > 0.01 * spacing[1])) {
    warnings.push(`in-plane spacing after resize differs between cases; the dataset reports the mean ${spacing.map((s) => s.toFixed(3)).join('x')} mm`);
  }
  if (skipped > 0) warnings.push(`skipped ${skipped} label-empty slice(s) (emptySliceKeepRate ${keep})`);
  const contiguous = skipped === 0 && thick.size === 1;
  return {
    dataset: { n, height: H, width: W, channels: C, images, labels, numClasses, spacing, caseIds, ...(contiguous ? { sliceThickness: [...thick][0] } : {}) },
    cases,
    warnings,
  };
}

/**
 * Rebuilds a canonical-order label volume from one case's predicted slices (count x H x W, in the
 * dataset's order), resizing each back with nearest neighbour; slices that were skipped stay 0.
 */
export function reassembleLabelVolume(pred: Uint8Array, H: number, W: number, c: CaseSlices): Uint8Array {
  if (pred.length !== c.count * H * W) throw new DatasetError('INVALID_OPTIONS', c.caseId, `prediction has ${pred.length} pixels, expected ${c.count}x${H}x${W}`);
  const d = c.dims;
  const out = new Uint8Array(d[0] * d[1] * d[2]);
  const strides = [1, d[0], d[0] * d[1]];
  const { rows, cols } = planeAxes(c.axis);
  for (let s = 0; s < c.count; s++) {
    const plane = resizeNearest(pred.subarray(s * H * W, (s + 1) * H * W), H, W, d[rows], d[cols]);
    const base = c.sourceIndex[s] * strides[c.axis];
    let o = 0;
    for (let r = 0; r < d[rows]; r++) for (let col = 0; col < d[cols]; col++) out[base + r * strides[rows] + col * strides[cols]] = plane[o++];
  }
  return out;
}
