/**
 * fedsfda's NIfTI reader against nibabel 5.0 (Debian python3-nibabel) on every NIfTI file it can find:
 * nibabel's own test data, mricron's templates, nifti_clib's example, and a generated corpus written by nifti_tool,
 * dcm2niix and nibabel (make-corpus.py). Per file it compares shape, dtype, stored axis codes, canonical shape,
 * canonical affine, spacing and every canonical voxel of every volume; a file nibabel refuses must be refused by
 * fedsfda too. Refusals that are fedsfda's policy, not a reading difference, are counted apart and listed
 * (`refusedByDesign`): values scaled beyond float32, and datatypes that are not scalar intensities.
 */
import { spawn, execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { NiftiError, readNiftiChannels, type NiftiChannels } from '../../site-agent/data/nifti/index.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
export const PYTHON = process.env.FEDSFDA_PYTHON ?? '/usr/bin/python3';
const NIBABEL_DATA = '/usr/lib/python3/dist-packages/nibabel/tests/data';
const MRICRON = '/usr/share/mricron/templates';
const NIFTICLIB_EXAMPLES = '/usr/share/doc/libnifti2-2/examples';

interface Reference {
  file: string;
  ok: boolean;
  error?: string;
  shape?: number[];
  dtype?: string;
  axcodes?: string;
  canonShape?: number[];
  canonAffine?: number[][];
  spacing?: number[];
  volumes?: number;
  nonFinite?: number;
  float32Overflow?: number;
  unitFactor?: number;
}

export interface FileResult {
  readonly file: string;
  readonly source: string;
  readonly outcome: 'agree-read' | 'agree-refused' | 'refused-by-design' | 'disagree';
  readonly differences: readonly string[];
  readonly nibabelError?: string;
  readonly fedsfdaError?: string;
}

export interface NibabelReport {
  readonly files: number;
  readonly bySource: Readonly<Record<string, number>>;
  readonly agreeRead: number;
  readonly agreeRefused: number;
  readonly refusedByDesign: number;
  readonly disagreements: number;
  readonly voxelsCompared: number;
  readonly maxAffineDiffMm: number;
  readonly unitConverted: number;
  readonly skippedSources: readonly string[];
  readonly results: readonly FileResult[];
}

/** True when /usr/bin/python3 can import nibabel (Debian python3-nibabel). */
export async function nibabelAvailable(): Promise<boolean> {
  try {
    await promisify(execFile)(PYTHON, ['-c', 'import nibabel']);
    return true;
  } catch {
    return false;
  }
}

const NIFTI_LIKE = /\.(nii|hdr)(\.gz)?$/i;

async function listDir(dir: string, pattern: RegExp): Promise<string[]> {
  if (!existsSync(dir)) return [];
  return (await readdir(dir)).filter((f) => pattern.test(f)).sort().map((f) => join(dir, f));
}

/** Datatypes fedsfda refuses on purpose: not scalar intensities a segmentation model can take. */
const NON_SCALAR = /complex|rgb|float128/;

function compareRead(ref: Reference, ours: NiftiChannels, vox: Float32Array): { diffs: string[]; maxAff: number } {
  const diffs: string[] = [];
  const eq = (a: readonly unknown[], b: readonly unknown[]) => a.length === b.length && a.every((v, i) => v === b[i]);
  if (!eq(ours.rawDims, ref.shape ?? [])) diffs.push(`shape ${ours.rawDims.join('x')} vs nibabel ${ref.shape?.join('x')}`);
  if (ours.datatype !== ref.dtype) diffs.push(`dtype ${ours.datatype} vs nibabel ${ref.dtype}`);
  if (ours.orientation !== ref.axcodes) diffs.push(`axis codes ${ours.orientation} vs nibabel ${ref.axcodes}`);
  if (!eq(ours.dims, ref.canonShape ?? [])) diffs.push(`canonical shape ${ours.dims.join('x')} vs nibabel ${ref.canonShape?.join('x')}`);
  let maxAff = 0;
  for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) maxAff = Math.max(maxAff, Math.abs(ours.affine[i][j] - (ref.canonAffine?.[i][j] ?? NaN)) || 0);
  const scale = Math.max(1, ...ours.affine.slice(0, 3).flat().map(Math.abs));
  if (maxAff > 1e-4 * scale) diffs.push(`canonical affine differs by up to ${maxAff.toExponential(2)} mm`);
  const sp = ref.spacing ?? [];
  if (ours.spacing.some((s, i) => Math.abs(s - sp[i]) > 1e-6 * Math.max(1, s))) diffs.push(`spacing ${ours.spacing.join('x')} vs nibabel ${sp.join('x')}`);
  if (ours.nonFiniteVoxels !== ref.nonFinite) diffs.push(`NaN/Inf voxels ${ours.nonFiniteVoxels} vs nibabel ${ref.nonFinite}`);
  if (ours.channels.length !== ref.volumes) diffs.push(`volumes ${ours.channels.length} vs nibabel ${ref.volumes}`);
  else {
    const n = ours.channels[0]?.length ?? 0;
    if (vox.length !== n * ours.channels.length) diffs.push(`nibabel gave ${vox.length} voxels, fedsfda ${n * ours.channels.length}`);
    else {
      let bad = 0;
      let first = -1;
      ours.channels.forEach((c, k) => {
        for (let i = 0; i < n; i++) {
          if (c[i] !== vox[k * n + i] && !(c[i] === 0 && vox[k * n + i] === 0)) {
            bad++;
            if (first < 0) first = k * n + i;
          }
        }
      });
      if (bad > 0) diffs.push(`${bad} voxel(s) differ (first at ${first}: fedsfda ${ours.channels[Math.floor(first / n)][first % n]}, nibabel ${vox[first]})`);
    }
  }
  return { diffs, maxAff };
}

/** A long-running nibabel reader (reference.py): one request per file. */
function startReference(voxFile: string): { ask: (file: string) => Promise<Reference>; close: () => Promise<void> } {
  const py = spawn(PYTHON, [join(HERE, 'reference.py'), voxFile], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: py.stdout });
  const waiting: Array<(r: Reference) => void> = [];
  lines.on('line', (l) => waiting.shift()?.(JSON.parse(l) as Reference));
  const exited = new Promise<void>((res) => py.on('close', () => res()));
  return {
    ask: (file) =>
      new Promise((res, rej) => {
        waiting.push(res);
        py.once('close', () => rej(new Error('nibabel reference process exited')));
        py.stdin.write(`${file}\n`);
      }),
    close: async () => {
      py.stdin.end();
      await exited;
    },
  };
}

async function collect(work: string): Promise<{ files: Array<{ file: string; source: string }>; skipped: string[] }> {
  const files: Array<{ file: string; source: string }> = [];
  for (const f of await listDir(NIBABEL_DATA, NIFTI_LIKE)) files.push({ file: f, source: 'nibabel-test-data' });
  for (const f of await listDir(MRICRON, NIFTI_LIKE)) files.push({ file: f, source: 'mricron' });
  for (const f of await listDir(NIFTICLIB_EXAMPLES, NIFTI_LIKE)) files.push({ file: f, source: 'nifti_clib-example' });
  const { stdout } = await promisify(execFile)(PYTHON, [join(HERE, 'make-corpus.py'), work], { maxBuffer: 64 << 20 });
  const made = JSON.parse(stdout) as { files: string[]; skipped: string[] };
  for (const f of made.files) files.push({ file: f, source: f.slice(work.length + 1).split('/')[0] });
  return { files, skipped: made.skipped };
}

/** Runs the whole comparison; `onFile` sees each result as it comes (for progress output). */
export async function runNibabelCheck(onFile?: (r: FileResult) => void): Promise<NibabelReport> {
  const work = await mkdtemp(join(tmpdir(), 'fedsfda-nibabel-'));
  const voxFile = join(work, 'reference.f32');
  const ref = startReference(voxFile);
  const results: FileResult[] = [];
  let voxels = 0;
  let maxAffine = 0;
  let unitConverted = 0;
  try {
    const { files, skipped } = await collect(work);
    for (const { file, source } of files) {
      const r = await ref.ask(file);
      let ours: NiftiChannels | undefined;
      let err: NiftiError | undefined;
      try {
        ours = await readNiftiChannels(file, { nonFinite: 'zero', maxBytes: 2 ** 31 });
      } catch (e) {
        if (!(e instanceof NiftiError)) throw e;
        err = e;
      }
      let res: FileResult;
      if (!r.ok) {
        res = err
          ? { file, source, outcome: 'agree-refused', differences: [], nibabelError: r.error, fedsfdaError: `${err.code}: ${err.message}` }
          : { file, source, outcome: 'disagree', differences: [`nibabel refuses (${r.error}), fedsfda reads it`], nibabelError: r.error };
      } else if (err !== undefined) {
        const byDesign = (err.code === 'VALUE_OUT_OF_RANGE' && (r.float32Overflow ?? 0) > 0) || (err.code === 'UNSUPPORTED_DATATYPE' && NON_SCALAR.test(r.dtype ?? ''));
        res = { file, source, outcome: byDesign ? 'refused-by-design' : 'disagree', differences: byDesign ? [] : [`fedsfda refuses (${err.code}: ${err.message}), nibabel reads it`], fedsfdaError: `${err.code}: ${err.message}` };
      } else {
        const buf = await readFile(voxFile);
        const vox = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
        const c = compareRead(r, ours!, vox);
        voxels += vox.length;
        maxAffine = Math.max(maxAffine, c.maxAff);
        if (r.unitFactor !== 1) unitConverted++;
        res = { file, source, outcome: c.diffs.length === 0 ? 'agree-read' : 'disagree', differences: c.diffs };
      }
      results.push(res);
      onFile?.(res);
    }
    const count = (o: FileResult['outcome']) => results.filter((x) => x.outcome === o).length;
    const bySource: Record<string, number> = {};
    for (const x of results) bySource[x.source] = (bySource[x.source] ?? 0) + 1;
    return {
      files: results.length,
      bySource,
      agreeRead: count('agree-read'),
      agreeRefused: count('agree-refused'),
      refusedByDesign: count('refused-by-design'),
      disagreements: count('disagree'),
      voxelsCompared: voxels,
      maxAffineDiffMm: maxAffine,
      unitConverted,
      skippedSources: skipped,
      results,
    };
  } finally {
    await ref.close();
    await rm(work, { recursive: true, force: true });
  }
}
