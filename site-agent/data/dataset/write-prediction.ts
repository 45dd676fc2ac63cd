/** Writing a predicted class map as a NIfTI label file with the source image's geometry and the dataset's codes. */
import { classMapToCodes } from '../nifti/label-map.ts';
import type { NiftiLike } from '../nifti/nifti-header.ts';
import { writeNifti } from '../nifti/write-nifti.ts';

/**
 * `classes` are canonical-order class indices (as reassembleLabelVolume returns them); `labelCodes` (SiteDataset /
 * LoadedDataset) turns class k back into the code the dataset's label files use, so an atlas-coded dataset gets
 * atlas-coded predictions. Stored as uint8, uint16 or int32, whichever holds the largest code.
 *
 * @example
 * await writePrediction('pred/case_7.nii.gz', vol, loaded.cases[7].image, site.labelCodes);
 */
export async function writePrediction(file: string, classes: Uint8Array, like: NiftiLike, labelCodes?: readonly number[]): Promise<void> {
  const { data, datatype } = classMapToCodes(classes, labelCodes);
  await writeNifti(file, data, like, { datatype, label: true });
}
