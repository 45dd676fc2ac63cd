/**
 * Volumes -> the 2D SliceDataset the model trains on: intensity normalisation, label remapping,
 * slice extraction along a chosen canonical axis, resize to the model input (bilinear images,
 * nearest labels), optional thinning of label-empty slices. Deterministic in `seed`.
 * `reassembleLabelVolume` inverts the slicing so predictions can be written back as NIfTI.
 */
import { Rng } from '../../../protocol/common/index.ts';
import { resizeBilinear, resizeNearest } from '../resize.ts';
import type { ImageSlices, SliceDataset } from '../slice-dataset.ts';
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

/** A volume ready for slicing (canonical order), with or without its label map. */
export interface ImageVolumeCase {
  readonly id: string;
  /** The (first) input channel. */
  readonly image: Float32Array;
  /** All input channels (image is channels[0]); absent for a one-channel case. Each is normalised on its own. */
  readonly channels?: readonly Float32Array[];
  readonly label?: Uint8Array;
  readonly dims: readonly [number, number, number];
  readonly spacing: readonly [number, number, number];
}

/** A labelled volume ready for slicing (canonical order). */
export interface VolumeCase extends ImageVolumeCase {
  readonly label: Uint8Array;
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

export interface ImagePreprocessResult {
  readonly dataset: ImageSlices;
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

interface CheckedOptions {
  readonly H: number;
  readonly W: number;
  readonly axis: 0 | 1 | 2;
  readonly keep: number;
  /** Input channels of every case (the first case's count). */
  readonly C: number;
}

function checkOptions(volumes: readonly ImageVolumeCase[], opts: PreprocessOptions): CheckedOptions {
  const [H, W] = typeof opts.size === 'number' ? [opts.size, opts.size] : opts.size;
  if (![H, W].every((s) => Number.isInteger(s) && s >= 2 && s <= 4096)) throw new DatasetError('INVALID_OPTIONS', 'preprocess', `size must be integers in [2, 4096], got ${JSON.stringify(opts.size)}`);
  const axis = opts.axis ?? 2;
  if (![0, 1, 2].includes(axis)) throw new DatasetError('INVALID_OPTIONS', 'preprocess', `axis must be 0, 1 or 2, got ${String(axis)}`);
  const keep = opts.emptySliceKeepRate ?? 1;
  if (!(keep >= 0 && keep <= 1)) throw new DatasetError('INVALID_OPTIONS', 'preprocess', `emptySliceKeepRate must be in [0, 1], got ${keep}`);
  if (volumes.length === 0) throw new DatasetError('NO_CASES', 'preprocess', 'no volumes to slice');
  return { H, W, axis, keep, C: volumes[0].channels?.length ?? 1 };
}

/** The slices of every volume, before they are packed into one array. */
interface Sliced {
  readonly imgs: Float32Array[];
  /** Absent when the volumes carry no labels. */
  readonly labs?: Uint8Array[];
  readonly caseIds: string[];
  readonly cases: CaseSlices[];
  readonly spacings: Array<[number, number]>;
  readonly thick: Set<number>;
  maxClass: number;
  skipped: number;
}

function remapLabels(label: Uint8Array, labelMap: Readonly<Record<number, number>> | undefined): Uint8Array {
  if (!labelMap) return label;
  const out = new Uint8Array(label.length);
  for (let i = 0; i < out.length; i++) out[i] = labelMap[label[i]] ?? label[i];
  return out;
}

/** Slices one volume into `acc`; label-empty slices are thinned (seeded) only when labels are known. */
function sliceVolume(v: ImageVolumeCase, opts: PreprocessOptions, o: CheckedOptions, rng: Rng, acc: Sliced): void {
  const { rows, cols } = planeAxes(o.axis);
  const src = v.channels ?? [v.image];
  if (src.length !== o.C) throw new DatasetError('INVALID_OPTIONS', v.id, `${src.length} input channel(s), the first case has ${o.C}`);
  const lab = v.label === undefined ? undefined : remapLabels(v.label, opts.labelMap);
  if (lab === undefined && opts.normalization?.kind === 'zscore' && opts.normalization.mask === 'label') {
    throw new DatasetError('INVALID_OPTIONS', v.id, 'normalization mask "label" needs labels, and this case has none');
  }
  const chans = src.map((c) => {
    const img = new Float32Array(c);
    normalizeVolume(img, lab ?? new Uint8Array(0), opts.normalization ?? { kind: 'zscore', mask: 'nonzero' });
    return img;
  });
  const h0 = v.dims[rows];
  const w0 = v.dims[cols];
  const sImg = new Float32Array(h0 * w0);
  const sLab = new Uint8Array(h0 * w0);
  const sourceIndex: number[] = [];
  const start = acc.caseIds.length;
  for (let k = 0; k < v.dims[o.axis]; k++) {
    if (lab !== undefined) {
      extractSlice(lab, v.dims, o.axis, k, sLab);
      let empty = true;
      for (let i = 0; i < sLab.length; i++) {
        if (sLab[i] !== 0) {
          empty = false;
          if (sLab[i] > acc.maxClass) acc.maxClass = sLab[i];
        }
      }
      // Draw for every empty slice (kept or not) so that the stream, hence the choice, is reproducible.
      if (empty && o.keep < 1 && rng.next() >= o.keep) {
        acc.skipped++;
        continue;
      }
      acc.labs?.push(resizeNearest(sLab, h0, w0, o.H, o.W));
    }
    // NHWC: the channels of one pixel are adjacent.
    const px = o.H * o.W;
    const nhwc = new Float32Array(px * o.C);
    chans.forEach((img, ch) => {
      extractSlice(img, v.dims, o.axis, k, sImg);
      const plane = resizeBilinear(sImg, h0, w0, o.H, o.W);
      for (let i = 0; i < px; i++) nhwc[i * o.C + ch] = plane[i];
    });
    acc.imgs.push(nhwc);
    acc.caseIds.push(v.id);
    sourceIndex.push(k);
  }
  acc.cases.push({ caseId: v.id, axis: o.axis, dims: [...v.dims] as [number, number, number], start, count: acc.caseIds.length - start, sourceIndex });
  acc.spacings.push([(v.spacing[rows] * h0) / o.H, (v.spacing[cols] * w0) / o.W]);
  acc.thick.add(+v.spacing[o.axis].toFixed(6));
}

function sliceVolumes(volumes: readonly ImageVolumeCase[], opts: PreprocessOptions, withLabels: boolean): { acc: Sliced; o: CheckedOptions } {
  const o = checkOptions(volumes, opts);
  const rng = new Rng(opts.seed ?? 0);
  const acc: Sliced = { imgs: [], ...(withLabels ? { labs: [] } : {}), caseIds: [], cases: [], spacings: [], thick: new Set(), maxClass: 0, skipped: 0 };
  for (const v of volumes) sliceVolume(v, opts, o, rng, acc);
  return { acc, o };
}

function pack<T extends Float32Array | Uint8Array>(parts: readonly T[], size: number, make: (n: number) => T): T {
  const out = make(parts.length * size);
  parts.forEach((p, i) => out.set(p, i * size));
  return out;
}

/** The image fields shared by labelled and unlabeled results, and the warnings about them. */
function imageSlices(acc: Sliced, o: CheckedOptions): { slices: ImageSlices; warnings: string[] } {
  const warnings: string[] = [];
  const mean = (k: 0 | 1): number => acc.spacings.reduce((s, p) => s + p[k], 0) / acc.spacings.length;
  const spacing: [number, number] = [mean(0), mean(1)];
  if (acc.spacings.some((p) => Math.abs(p[0] - spacing[0]) > 0.01 * spacing[0] || Math.abs(p[1] - spacing[1]) > 0.01 * spacing[1])) {
    warnings.push(`in-plane spacing after resize differs between cases; the dataset reports the mean ${spacing.map((s) => s.toFixed(3)).join('x')} mm`);
  }
  if (acc.skipped > 0) warnings.push(`skipped ${acc.skipped} label-empty slice(s) (emptySliceKeepRate ${o.keep})`);
  const contiguous = acc.skipped === 0 && acc.thick.size === 1;
  const images = pack(acc.imgs, o.H * o.W * o.C, (n) => new Float32Array(n));
  const slices: ImageSlices = { n: acc.imgs.length, height: o.H, width: o.W, channels: o.C, images, spacing, caseIds: acc.caseIds, ...(contiguous ? { sliceThickness: [...acc.thick][0] } : {}) };
  return { slices, warnings };
}

/** Slices, normalises and resizes labelled volumes into one SliceDataset. Images are copied, never mutated. */
export function volumesToSliceDataset(volumes: readonly VolumeCase[], opts: PreprocessOptions): PreprocessResult {
  const { acc, o } = sliceVolumes(volumes, opts, true);
  const numClasses = opts.numClasses ?? acc.maxClass + 1;
  if (acc.maxClass >= numClasses) throw new DatasetError('INVALID_OPTIONS', 'preprocess', `label value ${acc.maxClass} found but numClasses is ${numClasses} (use labelMap to remap)`);
  const { slices, warnings } = imageSlices(acc, o);
  const labels = pack(acc.labs ?? [], o.H * o.W, (n) => new Uint8Array(n));
  return { dataset: { ...slices, labels, numClasses }, cases: acc.cases, warnings };
}

/**
 * Slices, normalises and resizes volumes that have no labels (a new hospital's scans) exactly as
 * `volumesToSliceDataset` does their images; label-only options (`labelMap`, `numClasses`, empty-slice thinning) do not apply.
 */
export function volumesToImageSlices(volumes: readonly ImageVolumeCase[], opts: PreprocessOptions): ImagePreprocessResult {
  const { acc, o } = sliceVolumes(volumes.map((v) => ({ ...v, label: undefined })), { ...opts, emptySliceKeepRate: 1 }, false);
  const { slices, warnings } = imageSlices(acc, o);
  return { dataset: slices, cases: acc.cases, warnings };
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
