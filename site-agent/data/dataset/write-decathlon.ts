/** Writing a Medical Segmentation Decathlon layout folder (dataset.json, imagesTr/, labelsTr/, imagesTs/). */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { NiftiDatatypeName } from '../nifti/datatypes.ts';
import type { NiftiLike } from '../nifti/nifti-header.ts';
import { writeNifti } from '../nifti/write-nifti.ts';

export interface DecathlonCase {
  readonly id: string;
  /** Canonical-order voxels (as NiftiVolume.data) placed with `like`. */
  readonly image: ArrayLike<number>;
  /** Absent for test cases (written to imagesTs/). */
  readonly label?: Uint8Array;
  readonly like: NiftiLike;
}

export interface DecathlonDatasetSpec {
  readonly name: string;
  readonly description?: string;
  /** Label value -> name, including 0 (background). */
  readonly labels: Readonly<Record<number, string>>;
  readonly modality?: string;
  readonly imageDatatype?: NiftiDatatypeName;
  /** Extra fields stored in dataset.json (e.g. the simulated scanner of a site). */
  readonly extra?: Readonly<Record<string, unknown>>;
}

/** Writes the cases and a dataset.json; returns the dataset.json path. */
export async function writeDecathlonDataset(dir: string, spec: DecathlonDatasetSpec, cases: readonly DecathlonCase[]): Promise<string> {
  await mkdir(join(dir, 'imagesTr'), { recursive: true });
  await mkdir(join(dir, 'labelsTr'), { recursive: true });
  await mkdir(join(dir, 'imagesTs'), { recursive: true });
  const training: Array<{ image: string; label: string }> = [];
  const test: string[] = [];
  for (const c of cases) {
    if (c.label !== undefined) {
      await writeNifti(join(dir, 'imagesTr', `${c.id}.nii.gz`), c.image, c.like, { datatype: spec.imageDatatype ?? 'float32' });
      await writeNifti(join(dir, 'labelsTr', `${c.id}.nii.gz`), c.label, c.like, { datatype: 'uint8', label: true });
      training.push({ image: `./imagesTr/${c.id}.nii.gz`, label: `./labelsTr/${c.id}.nii.gz` });
    } else {
      await writeNifti(join(dir, 'imagesTs', `${c.id}.nii.gz`), c.image, c.like, { datatype: spec.imageDatatype ?? 'float32' });
      test.push(`./imagesTs/${c.id}.nii.gz`);
    }
  }
  const json = {
    name: spec.name,
    description: spec.description ?? '',
    tensorImageSize: '3D',
    modality: { '0': spec.modality ?? 'MRI' },
    labels: Object.fromEntries(Object.entries(spec.labels).map(([k, v]) => [String(k), v])),
    numTraining: training.length,
    numTest: test.length,
    training,
    test,
    ...(spec.extra ?? {}),
  };
  const file = join(dir, 'dataset.json');
  await writeFile(file, `${JSON.stringify(json, null, 2)}\n`);
  return file;
}
