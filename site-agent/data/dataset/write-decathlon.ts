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
  /**
   * Several input channels (image is ignored): written nnU-Net style as `<id>_0000.nii.gz`, `<id>_0001.nii.gz`, ...
   * and listed in dataset.json as `<id>.nii.gz` (found through the `_0000` rule).
   */
  readonly channels?: readonly ArrayLike<number>[];
  /** Absent for test cases (written to imagesTs/). */
  readonly label?: Uint8Array;
  readonly like: NiftiLike;
}

export interface DecathlonDatasetSpec {
  readonly name: string;
  readonly description?: string;
  /** Label value -> name, including 0 (background). */
  readonly labels: Readonly<Record<number, string>>;
  /** One name per input channel (dataset.json `modality` {"0": ..., "1": ...}); default one channel, "MRI". */
  readonly modality?: string | readonly string[];
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
  const writeImage = async (folder: string, c: DecathlonCase): Promise<void> => {
    const opts = { datatype: spec.imageDatatype ?? 'float32' } as const;
    if (c.channels === undefined) await writeNifti(join(dir, folder, `${c.id}.nii.gz`), c.image, c.like, opts);
    else for (const [k, ch] of c.channels.entries()) await writeNifti(join(dir, folder, `${c.id}_${String(k).padStart(4, '0')}.nii.gz`), ch, c.like, opts);
  };
  for (const c of cases) {
    if (c.label !== undefined) {
      await writeImage('imagesTr', c);
      await writeNifti(join(dir, 'labelsTr', `${c.id}.nii.gz`), c.label, c.like, { datatype: 'uint8', label: true });
      training.push({ image: `./imagesTr/${c.id}.nii.gz`, label: `./labelsTr/${c.id}.nii.gz` });
    } else {
      await writeImage('imagesTs', c);
      test.push(`./imagesTs/${c.id}.nii.gz`);
    }
  }
  const modality = typeof spec.modality === 'string' || spec.modality === undefined ? [spec.modality ?? 'MRI'] : spec.modality;
  const json = {
    name: spec.name,
    description: spec.description ?? '',
    tensorImageSize: '3D',
    modality: Object.fromEntries(modality.map((m, k) => [String(k), m])),
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
