/**
 * A federation's label table from a dataset.json (`labels`, MSD `{"0": "background", "2001": "Precentral_L"}` or
 * nnU-Net v2 `{"background": 0}` style): the label code of each class, class k = the k-th smallest code, as
 * loadDatasetCases maps them. A new site that has no labels of its own writes its predictions with these codes.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { classCodes } from '../nifti/label-map.ts';
import { DatasetError } from './dataset-error.ts';
import { parseLabels } from './discover-dataset.ts';

/** A label table is kilobytes; a larger file is refused unread. */
const MAX_BYTES = 64 << 20;

/**
 * Sorted label codes of a dataset.json file, or of the dataset.json inside a folder.
 * Throws DatasetError('BAD_DATASET_JSON') naming the problem (missing, unparsable, no `labels`, bad codes).
 *
 * @example
 * const codes = await readLabelCodes('consortium/dataset.json'); // [0, 2001, 4101, 9170]
 */
export async function readLabelCodes(path: string): Promise<number[]> {
  let file = path;
  let size: number;
  try {
    const s = await stat(path);
    if (s.isDirectory()) file = join(path, 'dataset.json');
    size = (await stat(file)).size;
  } catch {
    throw new DatasetError('BAD_DATASET_JSON', file, 'no such file (give a dataset.json or a folder holding one)');
  }
  if (size > MAX_BYTES) throw new DatasetError('BAD_DATASET_JSON', file, `${size} bytes is over the ${MAX_BYTES}-byte limit for a dataset.json`);
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new DatasetError('BAD_DATASET_JSON', file, `cannot parse (${e instanceof Error ? e.message : String(e)})`);
  }
  const r = z.object({ labels: z.record(z.string(), z.union([z.string(), z.number(), z.array(z.number())])) }).safeParse(raw);
  if (!r.success) throw new DatasetError('BAD_DATASET_JSON', file, `labels: ${r.error.issues[0].message}`);
  try {
    return classCodes(parseLabels(file, r.data.labels).keys());
  } catch (e) {
    if (e instanceof RangeError) throw new DatasetError('BAD_DATASET_JSON', file, `labels: ${e.message}`);
    throw e;
  }
}
