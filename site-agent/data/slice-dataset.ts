/**
 * The in-memory 2D slices every trainer, adapter and evaluator consumes.
 * Images are NHWC float32 (already normalised); a `SliceDataset` adds one class index per pixel.
 */

/** Slices without labels: what a new hospital has, and all that adaptation may see. */
export interface ImageSlices {
  /** Number of 2D slices. */
  readonly n: number;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  /** n * height * width * channels, NHWC. */
  readonly images: Float32Array;
  /** In-plane pixel spacing in mm, [row, col], used by the distance metrics. */
  readonly spacing: readonly [number, number];
  /** Per slice: the case (volume) it came from, so metrics can be computed per volume. */
  readonly caseIds: readonly string[];
  /**
   * Distance in mm between consecutive slices of one case, when the slices are a contiguous stack.
   * With it, metrics are computed per 3D volume; without it, per 2D slice.
   */
  readonly sliceThickness?: number;
}

/** Labelled slices: the training set. */
export interface SliceDataset extends ImageSlices {
  /** n * height * width class indices in [0, numClasses). */
  readonly labels: Uint8Array;
  readonly numClasses: number;
}

/** A copy of slices [start, end) as a new dataset (views are avoided so that callers may mutate). */
export function sliceRange(ds: SliceDataset, start: number, end: number): SliceDataset {
  const px = ds.height * ds.width;
  return {
    n: end - start,
    height: ds.height,
    width: ds.width,
    channels: ds.channels,
    images: ds.images.slice(start * px * ds.channels, end * px * ds.channels),
    labels: ds.labels.slice(start * px, end * px),
    numClasses: ds.numClasses,
    spacing: ds.spacing,
    caseIds: ds.caseIds.slice(start, end),
    ...(ds.sliceThickness !== undefined ? { sliceThickness: ds.sliceThickness } : {}),
  };
}
