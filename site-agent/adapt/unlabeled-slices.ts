/**
 * What adaptation is allowed to see at the target site: images only. The type has no `labels` field, and
 * `toUnlabeled` copies the image fields without ever reading `labels`, so target labels cannot reach any training
 * code path (see the poisoned-labels test in adapt.test.ts).
 */
import type { ImageSlices, SliceDataset } from '../data/index.ts';
import { AdaptError } from './adapt-error.ts';

/** data's `ImageSlices` (no labels by construction); adaptation scores per slice, so without the slice thickness. */
export type UnlabeledSlices = Omit<ImageSlices, 'sliceThickness'>;

/** Strips a labeled dataset down to its images (labels are never read). */
export function toUnlabeled(ds: SliceDataset): UnlabeledSlices {
  return {
    n: ds.n,
    height: ds.height,
    width: ds.width,
    channels: ds.channels,
    images: ds.images,
    spacing: ds.spacing,
    caseIds: ds.caseIds,
  };
}

export function validateUnlabeled(ds: UnlabeledSlices): void {
  if (!Number.isInteger(ds.n) || ds.n < 1) throw new AdaptError('EMPTY_TARGET', `target set must hold at least one slice, got n=${ds.n}`);
  const expected = ds.n * ds.height * ds.width * ds.channels;
  if (!(ds.images instanceof Float32Array) || ds.images.length !== expected) {
    throw new AdaptError('BAD_SHAPE', `target images must be a Float32Array of n*h*w*c = ${expected} values, got ${ds.images?.length}`);
  }
}
