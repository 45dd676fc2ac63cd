/**
 * Finding the image/label pairs of a dataset folder:
 * - Medical Segmentation Decathlon / nnU-Net layout: `dataset.json` (`labels`, `training` list of
 *   {image, label}, optional `test`), `imagesTr/`, `labelsTr/`, `imagesTs/`. nnU-Net v2 files without a
 *   `training` list are matched by name (`imagesTr/<case>_0000<ext>` with `labelsTr/<case><ext>`).
 * - A plain folder of pairs matched by name: `images/X` + `labels/X` (or `masks/X`), or `X` + `X_label`
 *   (suffixes `_label`, `_labels`, `_seg`, `_mask`, `_gt`) side by side.
 */
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { basename, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { z } from 'zod';
import { DatasetError, type FileProblem } from './dataset-error.ts';

export interface CaseFiles {
  readonly id: string;
  /** The image: a NIfTI file (3D, or 4D with one channel per volume), or a folder holding one DICOM series. */
  readonly image: string;
  /** Several files per case (nnU-Net `_0000`, `_0001`, ... or a dataset.json image list): one channel each, in order. */
  readonly channelFiles?: readonly string[];
  /** A DICOM series found in a bare DICOM folder: its files (`image` is then the folder of its first file). */
  readonly dicomFiles?: readonly string[];
  /** Absent for unlabeled (test) cases. */
  readonly label?: string;
}

export interface DiscoveredDataset {
  readonly root: string;
  readonly layout: 'decathlon' | 'pairs';
  readonly name?: string;
  /** Legal label values with names, from dataset.json (undefined for plain folders). */
  readonly labelNames?: ReadonlyMap<number, string>;
  /** Input channel names in channel order, from dataset.json `modality` (MSD) or `channel_names` (nnU-Net v2). */
  readonly modalities?: readonly string[];
  readonly training: readonly CaseFiles[];
  readonly test: readonly CaseFiles[];
  /** Files listed or found that cannot be paired (missing label, listed but absent, outside the folder). */
  readonly problems: readonly FileProblem[];
}

const NIFTI_EXT = /\.nii(\.gz)?$/i;

const DatasetJsonSchema = z.object({
  name: z.string().optional(),
  labels: z.record(z.string(), z.union([z.string(), z.number(), z.array(z.number())])),
  training: z.array(z.object({ image: z.union([z.string(), z.array(z.string())]), label: z.string() })).optional(),
  test: z.array(z.union([z.string(), z.object({ image: z.string() })])).optional(),
  file_ending: z.string().optional(),
  modality: z.record(z.string(), z.string()).optional(),
  channel_names: z.record(z.string(), z.string()).optional(),
});

/** `{"0": "FLAIR", "1": "T1w"}` -> ['FLAIR', 'T1w']; keys must be 0..n-1. */
function parseModalities(file: string, m: Record<string, string> | undefined): string[] | undefined {
  if (m === undefined) return undefined;
  const keys = Object.keys(m).map(Number).sort((a, b) => a - b);
  if (keys.length === 0 || keys.some((k, i) => k !== i)) throw new DatasetError('BAD_DATASET_JSON', file, `modality keys must be "0".."${keys.length - 1}", got ${JSON.stringify(Object.keys(m))}`);
  return keys.map((k) => m[String(k)]);
}

/** nnU-Net channel files of one case: X_0000.nii.gz, X_0001.nii.gz, ... that exist, in order. */
export async function channelSiblings(first: string): Promise<string[]> {
  const m = /^(.*)_0000(\.nii(\.gz)?)$/i.exec(first);
  if (m === null) return [first];
  const out = [first];
  for (let k = 1; k < 100; k++) {
    const p = `${m[1]}_${String(k).padStart(4, '0')}${m[2]}`;
    if ((await exists(p)) !== 'file') break;
    out.push(p);
  }
  return out;
}

/** Label values from MSD (`{"0": "background"}`) or nnU-Net v2 (`{"background": 0}`) style `labels`. */
export function parseLabels(file: string, labels: Record<string, string | number | number[]>): Map<number, string> {
  const out = new Map<number, string>();
  for (const [k, v] of Object.entries(labels)) {
    if (/^\d+$/.test(k) && typeof v === 'string') out.set(Number(k), v);
    else if (typeof v === 'number' && Number.isInteger(v) && v >= 0) out.set(v, k);
    else if (Array.isArray(v)) for (const x of v) out.set(x, k);
    else throw new DatasetError('BAD_DATASET_JSON', file, `labels entry ${JSON.stringify(k)}: ${JSON.stringify(v)} is neither "<int>": "<name>" nor "<name>": <int>`);
  }
  if (out.size === 0) throw new DatasetError('BAD_DATASET_JSON', file, 'labels is empty');
  return out;
}

async function exists(p: string): Promise<'file' | 'dir' | 'none'> {
  try {
    const s = await stat(p);
    return s.isDirectory() ? 'dir' : 'file';
  } catch {
    return 'none';
  }
}

async function listNifti(dir: string): Promise<string[]> {
  if ((await exists(dir)) !== 'dir') return [];
  return (await readdir(dir)).filter((f) => NIFTI_EXT.test(f) && !f.startsWith('._') && !f.startsWith('.')).sort();
}

function stripExt(f: string): string {
  return f.replace(NIFTI_EXT, '');
}

function inside(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

/** dataset.json files larger than this are refused unread (a real one is kilobytes). */
const MAX_DATASET_JSON_BYTES = 64 << 20;

async function discoverDecathlon(root: string): Promise<DiscoveredDataset> {
  const jsonFile = join(root, 'dataset.json');
  const size = (await stat(jsonFile)).size;
  if (size > MAX_DATASET_JSON_BYTES) throw new DatasetError('BAD_DATASET_JSON', jsonFile, `${size} bytes is over the ${MAX_DATASET_JSON_BYTES}-byte limit for a dataset.json`);
  let parsed: z.infer<typeof DatasetJsonSchema>;
  try {
    const raw = JSON.parse(await readFile(jsonFile, 'utf8')) as unknown;
    const r = DatasetJsonSchema.safeParse(raw);
    if (!r.success) throw new DatasetError('BAD_DATASET_JSON', jsonFile, r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
    parsed = r.data;
  } catch (e) {
    if (e instanceof DatasetError) throw e;
    throw new DatasetError('BAD_DATASET_JSON', jsonFile, `cannot parse (${e instanceof Error ? e.message : String(e)})`);
  }
  const labelNames = parseLabels(jsonFile, parsed.labels);
  const problems: FileProblem[] = [];
  const training: CaseFiles[] = [];
  const test: CaseFiles[] = [];
  const check = async (rel: string, caseId: string, role: 'image' | 'label'): Promise<string | undefined> => {
    const p = resolve(root, rel);
    if (!inside(root, p)) {
      problems.push({ file: rel, caseId, role, code: 'OUTSIDE_DATASET', message: 'path points outside the dataset folder' });
      return undefined;
    }
    if ((await exists(p)) === 'none') {
      problems.push({ file: p, caseId, role, code: 'MISSING_FILE', message: 'listed in dataset.json but not found' });
      return undefined;
    }
    // A symlink may point anywhere; follow it and apply the same rule to its target.
    const real = await realpath(p);
    if (!inside(await realpath(root), real)) {
      problems.push({ file: p, caseId, role, code: 'OUTSIDE_DATASET', message: `links outside the dataset folder (to ${real})` });
      return undefined;
    }
    return p;
  };
  /** An entry's image file(s): a list (one per channel), or one name that may exist only as X_0000 + siblings. */
  const resolveImages = async (image: string | string[], id: string): Promise<{ image: string; channelFiles?: string[] } | undefined> => {
    let rels = Array.isArray(image) ? image : [image];
    if (rels.length === 1 && (await exists(resolve(root, rels[0]))) === 'none') {
      const alt = rels[0].replace(NIFTI_EXT, (m) => `_0000${m}`);
      if ((await exists(resolve(root, alt))) !== 'none') rels = (await channelSiblings(resolve(root, alt))).map((p) => relative(root, p));
    }
    const paths: string[] = [];
    for (const r of rels) {
      const p = await check(r, id, 'image');
      if (p === undefined) return undefined;
      paths.push(p);
    }
    return paths.length > 1 ? { image: paths[0], channelFiles: paths } : { image: paths[0] };
  };
  if (parsed.training !== undefined) {
    for (const entry of parsed.training) {
      // MSD lists "./imagesTr/X.nii.gz"; nnU-Net v1 stores it as imagesTr/X_0000.nii.gz, X_0001.nii.gz, ... (channels).
      const id = stripExt(basename(entry.label));
      const images = await resolveImages(entry.image, id);
      const label = await check(entry.label, id, 'label');
      if (images !== undefined && label !== undefined) training.push({ id, label, ...images });
    }
  } else {
    // nnU-Net v2: match by case name.
    const ext = parsed.file_ending ?? '.nii.gz';
    const labels = new Set(await listNifti(join(root, 'labelsTr')));
    for (const f of await listNifti(join(root, 'imagesTr'))) {
      const m = /^(.*)_0000(\.nii(\.gz)?)$/i.exec(f);
      if (m === null) continue;
      const id = m[1];
      const lab = `${id}${ext}`;
      if (!labels.has(lab)) {
        problems.push({ file: join(root, 'imagesTr', f), caseId: id, role: 'label', code: 'MISSING_LABEL', message: `no labelsTr/${lab}` });
        continue;
      }
      const channelFiles = await channelSiblings(join(root, 'imagesTr', f));
      training.push({ id, image: channelFiles[0], ...(channelFiles.length > 1 ? { channelFiles } : {}), label: join(root, 'labelsTr', lab) });
    }
  }
  for (const t of parsed.test ?? []) {
    const rel = typeof t === 'string' ? t : t.image;
    const id = stripExt(basename(rel));
    const images = await resolveImages(rel, id);
    if (images !== undefined) test.push({ id, ...images });
  }
  const modalities = parseModalities(jsonFile, parsed.modality ?? parsed.channel_names);
  return { root, layout: 'decathlon', name: parsed.name, labelNames, ...(modalities ? { modalities } : {}), training, test, problems };
}

const LABEL_SUFFIX = /_(label|labels|seg|mask|gt)$/i;

async function discoverPairs(root: string): Promise<DiscoveredDataset> {
  const problems: FileProblem[] = [];
  const training: CaseFiles[] = [];
  const imgDir = join(root, 'images');
  let labDir: string | undefined;
  for (const d of ['labels', 'masks', 'segmentations']) if ((await exists(join(root, d))) === 'dir') labDir = join(root, d);
  if ((await exists(imgDir)) === 'dir' && labDir !== undefined) {
    const labels = new Map((await listNifti(labDir)).map((f) => [stripExt(f), f]));
    // A sub-folder of images/ is one case given as a DICOM series (images/<case>/ + labels/<case>.nii.gz).
    const dicomCases = (await readdir(imgDir, { withFileTypes: true })).filter((e) => e.isDirectory() && !e.name.startsWith('.') && !NIFTI_EXT.test(e.name)).map((e) => e.name).sort();
    for (const id of dicomCases) {
      const lab = labels.get(id);
      if (lab === undefined) problems.push({ file: join(imgDir, id), caseId: id, role: 'label', code: 'MISSING_LABEL', message: `no label named ${id} in ${basename(labDir)}/` });
      else training.push({ id, image: join(imgDir, id), label: join(labDir, lab) });
    }
    for (const f of await listNifti(imgDir)) {
      const id = stripExt(f);
      const lab = labels.get(id);
      if (lab === undefined) problems.push({ file: join(imgDir, f), caseId: id, role: 'label', code: 'MISSING_LABEL', message: `no label named ${id} in ${basename(labDir)}/` });
      else training.push({ id, image: join(imgDir, f), label: join(labDir, lab) });
    }
  } else {
    const files = await listNifti(root);
    const labels = new Map<string, string>();
    for (const f of files) if (LABEL_SUFFIX.test(stripExt(f))) labels.set(stripExt(f).replace(LABEL_SUFFIX, ''), f);
    for (const f of files) {
      const id = stripExt(f);
      if (LABEL_SUFFIX.test(id)) continue;
      const lab = labels.get(id);
      if (lab === undefined) problems.push({ file: join(root, f), caseId: id, role: 'label', code: 'MISSING_LABEL', message: `no ${id}_label / _seg / _mask file next to it` });
      else training.push({ id, image: join(root, f), label: join(root, lab) });
    }
    // Directories named like NIfTI files are reported, not silently skipped.
    for (const f of files) {
      if ((await exists(join(root, f))) === 'dir') {
        const id = stripExt(f).replace(LABEL_SUFFIX, '');
        const idx = training.findIndex((c) => c.id === id);
        if (idx >= 0) training.splice(idx, 1);
        problems.push({ file: join(root, f), caseId: id, role: LABEL_SUFFIX.test(stripExt(f)) ? 'label' : 'image', code: 'NOT_A_FILE', message: 'is a directory, not a NIfTI file' });
      }
    }
  }
  return { root, layout: 'pairs', training, test: [], problems };
}

/** Finds the cases of a dataset folder (Decathlon/nnU-Net if `dataset.json` exists, else name-matched pairs). */
export async function discoverDataset(dir: string): Promise<DiscoveredDataset> {
  const root = resolve(dir);
  const kind = await exists(root);
  if (kind !== 'dir') throw new DatasetError('NOT_A_DATASET', root, kind === 'none' ? 'no such folder' : 'is a file, not a dataset folder');
  if ((await exists(join(root, 'dataset.json'))) === 'file') return discoverDecathlon(root);
  const ds = await discoverPairs(root);
  if (ds.training.length === 0 && ds.problems.length === 0) {
    throw new DatasetError('NOT_A_DATASET', root, 'no dataset.json and no image/label pairs (images/ + labels/, or X.nii.gz + X_label.nii.gz; a DICOM case is a folder images/<case>/ with labels/<case>.nii.gz; fedsfda data import-dicom converts DICOM series to NIfTI)');
  }
  return ds;
}
