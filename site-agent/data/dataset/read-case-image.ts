/**
 * A case's image as input channels: a 3D NIfTI (one channel), a 4D NIfTI (one channel per volume, unless one volume
 * is chosen with volumeIndex), several files (nnU-Net `_0000`, `_0001`, ...: one channel each, all on one grid),
 * a folder holding one DICOM series, or the files of one DICOM series (one channel).
 */
import { stat } from 'node:fs/promises';
import { DicomError } from '../dicom/dicom-error.ts';
import { readDicomFiles, readDicomSeries } from '../dicom/dicom-series.ts';
import { NiftiError } from '../nifti/nifti-error.ts';
import { readNifti, readNiftiChannels, type NiftiVolume, type ReadNiftiOptions } from '../nifti/read-nifti.ts';
import type { FileProblem } from './dataset-error.ts';
import type { CaseFiles } from './discover-dataset.ts';

export interface CaseImage {
  /** Geometry (and channel 0 as `data`), used to write predictions back. */
  readonly volume: NiftiVolume;
  /** Canonical-order float32 volumes, one per input channel. */
  readonly channels: readonly Float32Array[];
}

function problem(c: CaseFiles, e: unknown): FileProblem {
  if (e instanceof NiftiError || e instanceof DicomError) {
    return { file: e.file, caseId: c.id, role: 'image', code: e.code, message: e.message.replace(`${e.file}: `, '').replace(/ \[[A-Z_]+\]$/, '') };
  }
  throw e;
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** Reads the image of a case; failures come back as problems (never thrown one by one). */
export async function readCaseImage(c: CaseFiles, opts: ReadNiftiOptions, expectedChannels?: number): Promise<{ ok: true; value: CaseImage } | { ok: false; problems: FileProblem[] }> {
  let img: CaseImage;
  try {
    if (c.channelFiles !== undefined && c.channelFiles.length > 1) {
      const vols: NiftiVolume[] = [];
      for (const f of c.channelFiles) vols.push(await readNifti(f, opts));
      const ref = vols[0];
      for (const v of vols.slice(1)) {
        if (v.dims.some((d, i) => d !== ref.dims[i]) || v.affine.some((row, i) => row.some((x, j) => Math.abs(x - ref.affine[i][j]) > 1e-3 * Math.max(1, Math.abs(x))))) {
          return { ok: false, problems: [{ file: v.file, caseId: c.id, role: 'image', code: 'GEOMETRY_MISMATCH', message: `channel file is on another grid (dims ${v.dims.join('x')}) than ${ref.file} (dims ${ref.dims.join('x')}); resample the channels onto one grid` }] };
        }
      }
      img = { volume: ref, channels: vols.map((v) => v.data) };
    } else if (c.dicomFiles !== undefined) {
      const v = await readDicomFiles(`${c.image} (${c.id})`, c.dicomFiles, opts);
      img = { volume: v, channels: [v.data] };
    } else if (await isDir(c.image)) {
      const v = await readDicomSeries(c.image, opts);
      img = { volume: v, channels: [v.data] };
    } else if (opts.volumeIndex !== undefined) {
      const v = await readNifti(c.image, opts);
      img = { volume: v, channels: [v.data] };
    } else {
      const ch = await readNiftiChannels(c.image, opts);
      const { channels, ...info } = ch;
      img = { volume: { ...info, data: channels[0], volumeIndex: 0 }, channels };
    }
  } catch (e) {
    return { ok: false, problems: [problem(c, e)] };
  }
  if (expectedChannels !== undefined && img.channels.length !== expectedChannels) {
    return {
      ok: false,
      problems: [{ file: c.image, caseId: c.id, role: 'image', code: 'CHANNELS_MISMATCH', message: `${img.channels.length} channel(s), the dataset's modality list names ${expectedChannels}` }],
    };
  }
  return { ok: true, value: img };
}
