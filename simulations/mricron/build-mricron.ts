/**
 * Real-anatomy datasets from Debian's `mricron-data` (the Colin27 "ch2" T1 template with the AAL atlas
 * on the same 1 mm grid): one Medical Segmentation Decathlon folder per simulated site. Each case is a slab
 * of axial slices of the (downsampled) head, warped by a random smooth in-plane deformation so cases
 * differ, then seen through the site's simulated scanner (the phantom scanner shifts).
 */
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { geometryFromAffine, mul44, readNifti, type Mat44, type NiftiVolume } from '../../site-agent/data/nifti/index.ts';
import { writeDecathlonDataset, type DecathlonCase } from '../../site-agent/data/dataset/index.ts';
import { Rng } from '../../protocol/common/index.ts';
import { applyScannerShift, resolveScannerShift, sampleBiasField, type ScannerShiftOrPreset } from '../phantoms/index.ts';
import { buildLabels, LABEL_NAMES, type MricronLabelScheme } from './mricron-labels.ts';

export const DEFAULT_MRICRON_DIR = '/usr/share/mricron/templates';

/** The scanners assigned to sites 1, 2, 3, ... (cycled) unless `scanners` is given. */
export const DEFAULT_SITE_SCANNERS: readonly ScannerShiftOrPreset[] = ['scanner-a', 'scanner-b', 'scanner-c', 'scanner-d', 'low-field', 'mr-to-ct'];

export type MricronErrorCode = 'MRICRON_DATA_MISSING' | 'INVALID_OPTIONS' | 'TEMPLATE_MISMATCH';

export class MricronError extends Error {
  readonly code: MricronErrorCode;
  constructor(code: MricronErrorCode, message: string) {
    super(message);
    this.name = 'MricronError';
    this.code = code;
  }
}

export interface BuildMricronOptions {
  /** Output folder; site i goes to `<out>/site-<i>` (1-based). */
  out: string;
  sites: number;
  /** Training cases per site (default 6). */
  casesPerSite?: number;
  /** Unlabelled cases per site written to imagesTs/ (default 0). */
  testCasesPerSite?: number;
  /** Axial slices per case at the output resolution (default 12). */
  slabSlices?: number;
  /** Integer downsampling factor of the 1 mm template (default 2: 91x109 voxels at 2 mm in-plane). */
  downsample?: number;
  labels?: MricronLabelScheme;
  /** One scanner per site (cycled); default DEFAULT_SITE_SCANNERS. */
  scanners?: readonly ScannerShiftOrPreset[];
  seed?: number;
  /** Use the brain-extracted ch2bet as the image instead of the whole head (ch2). */
  skullStripped?: boolean;
  /** Where the templates are (default DEFAULT_MRICRON_DIR, or FEDSFDA_MRICRON_DIR). */
  templatesDir?: string;
  /**
   * 1 (default): the T1 only. 2: also a simulated T2-like contrast of the same slab (tissue contrast inverted inside
   * the head), through the same scanner; cases are written nnU-Net style (`_0000` T1, `_0001` T2-like).
   */
  contrasts?: 1 | 2;
}

export interface BuiltSite {
  readonly dir: string;
  readonly scanner: ScannerShiftOrPreset;
  readonly cases: number;
}

/** Fails with the install instruction when the package is absent. */
export async function locateMricronTemplates(dir?: string): Promise<string> {
  const d = dir ?? process.env.FEDSFDA_MRICRON_DIR ?? DEFAULT_MRICRON_DIR;
  for (const f of ['ch2.nii.gz', 'ch2bet.nii.gz', 'aal.nii.gz']) {
    try {
      await access(join(d, f));
    } catch {
      throw new MricronError('MRICRON_DATA_MISSING', `mricron-data templates not found (${join(d, f)} is missing); install them with: apt-get install mricron-data`);
    }
  }
  return d;
}

interface Grid {
  img: Float32Array;
  lab: Uint8Array;
  dims: [number, number, number];
  affine: Mat44;
}

/** Block-average downsampling for the image, block majority for the labels. */
function downsample(img: Float32Array, lab: Uint8Array, dims: readonly number[], f: number, affine: Mat44, K: number): Grid {
  const nd: [number, number, number] = [Math.floor(dims[0] / f), Math.floor(dims[1] / f), Math.floor(dims[2] / f)];
  const oi = new Float32Array(nd[0] * nd[1] * nd[2]);
  const ol = new Uint8Array(oi.length);
  const votes = new Uint32Array(K);
  for (let z = 0; z < nd[2]; z++) {
    for (let y = 0; y < nd[1]; y++) {
      for (let x = 0; x < nd[0]; x++) {
        let s = 0;
        votes.fill(0);
        for (let dz = 0; dz < f; dz++) {
          for (let dy = 0; dy < f; dy++) {
            const row = (x * f) + dims[0] * (y * f + dy + dims[1] * (z * f + dz));
            for (let dx = 0; dx < f; dx++) {
              s += img[row + dx];
              votes[lab[row + dx]]++;
            }
          }
        }
        let best = 0;
        for (let k = 1; k < K; k++) if (votes[k] > votes[best]) best = k;
        const o = x + nd[0] * (y + nd[1] * z);
        oi[o] = s / (f * f * f);
        ol[o] = best;
      }
    }
  }
  // New voxel i covers old voxels f*i .. f*i+f-1, centred at f*i + (f-1)/2.
  const t: Mat44 = [
    [f, 0, 0, (f - 1) / 2],
    [0, f, 0, (f - 1) / 2],
    [0, 0, f, (f - 1) / 2],
    [0, 0, 0, 1],
  ];
  return { img: oi, lab: ol, dims: nd, affine: mul44(affine, t) };
}

/**
 * One case: slices [z0, z0+S) of the grid, warped in-plane by a random similarity transform plus a smooth
 * sinusoidal displacement (the same for the whole slab, so the anatomy stays coherent across slices).
 */
function warpSlab(g: Grid, z0: number, S: number, rng: Rng): { img: Float32Array; lab: Uint8Array } {
  const [X, Y] = g.dims;
  const scale = rng.uniform(0.9, 1.1);
  const rot = rng.uniform(-0.17, 0.17);
  const tx = rng.uniform(-0.05, 0.05) * X;
  const ty = rng.uniform(-0.05, 0.05) * Y;
  const amp = rng.uniform(0.01, 0.025) * Math.min(X, Y);
  const kx = rng.uniform(1, 3) * ((2 * Math.PI) / X);
  const ky = rng.uniform(1, 3) * ((2 * Math.PI) / Y);
  const ph = rng.uniform(0, 2 * Math.PI);
  const cos = Math.cos(rot) / scale;
  const sin = Math.sin(rot) / scale;
  const cx = (X - 1) / 2;
  const cy = (Y - 1) / 2;
  const plane = X * Y;
  const img = new Float32Array(plane * S);
  const lab = new Uint8Array(plane * S);
  for (let y = 0; y < Y; y++) {
    for (let x = 0; x < X; x++) {
      // Inverse map: output pixel -> source position.
      const dx = x - cx - tx;
      const dy = y - cy - ty;
      let sx = cos * dx - sin * dy + cx;
      let sy = sin * dx + cos * dy + cy;
      sx += amp * Math.sin(ky * y + ph);
      sy += amp * Math.sin(kx * x + ph * 0.7);
      const inside = sx >= 0 && sy >= 0 && sx <= X - 1 && sy <= Y - 1;
      const x0 = Math.min(X - 2, Math.max(0, Math.floor(sx)));
      const y0 = Math.min(Y - 2, Math.max(0, Math.floor(sy)));
      const fx = Math.min(1, Math.max(0, sx - x0));
      const fy = Math.min(1, Math.max(0, sy - y0));
      const nx = Math.min(X - 1, Math.max(0, Math.round(sx)));
      const ny = Math.min(Y - 1, Math.max(0, Math.round(sy)));
      for (let s = 0; s < S; s++) {
        const base = (z0 + s) * plane;
        const o = s * plane + y * X + x;
        if (!inside) continue;
        const i00 = base + y0 * X + x0;
        const a = g.img[i00] + (g.img[i00 + 1] - g.img[i00]) * fx;
        const b = g.img[i00 + X] + (g.img[i00 + X + 1] - g.img[i00 + X]) * fx;
        img[o] = a + (b - a) * fy;
        lab[o] = g.lab[base + ny * X + nx];
      }
    }
  }
  return { img, lab };
}

function percentileOfNonzero(v: Float32Array, p: number): number {
  const nz: number[] = [];
  for (let i = 0; i < v.length; i += 7) if (v[i] > 0) nz.push(v[i]);
  if (nz.length === 0) return 1;
  nz.sort((a, b) => a - b);
  return nz[Math.min(nz.length - 1, Math.floor((p / 100) * nz.length))] || 1;
}

function checkInt(name: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max) throw new MricronError('INVALID_OPTIONS', `${name} must be an integer in [${min}, ${max}], got ${v}`);
}

/**
 * Builds `sites` Decathlon-layout datasets under `out`.
 *
 * @example
 * await buildMricronDatasets({ out: '/tmp/brains', sites: 3 }); // site-1 scanner-a, site-2 scanner-b, site-3 scanner-c
 */
export async function buildMricronDatasets(opts: BuildMricronOptions): Promise<BuiltSite[]> {
  const casesPerSite = opts.casesPerSite ?? 6;
  const testCases = opts.testCasesPerSite ?? 0;
  const S = opts.slabSlices ?? 12;
  const f = opts.downsample ?? 2;
  const scheme = opts.labels ?? 'aal4';
  const seed = opts.seed ?? 1;
  checkInt('sites', opts.sites, 1, 64);
  checkInt('casesPerSite', casesPerSite, 1, 1000);
  checkInt('testCasesPerSite', testCases, 0, 1000);
  checkInt('downsample', f, 1, 8);
  checkInt('slabSlices', S, 1, 512);
  if (!(scheme in LABEL_NAMES)) throw new MricronError('INVALID_OPTIONS', `labels must be one of ${Object.keys(LABEL_NAMES).join(', ')}, got ${String(scheme)}`);
  const scanners = opts.scanners ?? DEFAULT_SITE_SCANNERS;
  if (scanners.length === 0) throw new MricronError('INVALID_OPTIONS', 'scanners must not be empty');
  const shifts = scanners.map((s) => resolveScannerShift(s));
  const dir = await locateMricronTemplates(opts.templatesDir);
  const t1: NiftiVolume = await readNifti(join(dir, opts.skullStripped ? 'ch2bet.nii.gz' : 'ch2.nii.gz'));
  const bet = opts.skullStripped ? t1 : await readNifti(join(dir, 'ch2bet.nii.gz'));
  const aal = await readNifti(join(dir, 'aal.nii.gz'));
  for (const v of [bet, aal]) {
    if (v.dims.some((d, i) => d !== t1.dims[i])) throw new MricronError('TEMPLATE_MISMATCH', `${v.file} dims ${v.dims.join('x')} differ from ${t1.file} ${t1.dims.join('x')}`);
  }
  const K = Object.keys(LABEL_NAMES[scheme]).length;
  const labels = buildLabels(scheme, aal.data, bet.data);
  const g = downsample(t1.data, labels, t1.dims, f, t1.affine, K);
  const norm = percentileOfNonzero(g.img, 99.5);
  for (let i = 0; i < g.img.length; i++) g.img[i] = Math.min(1.2, g.img[i] / norm);
  // Slabs start where the labels are, so every case contains structures.
  const plane = g.dims[0] * g.dims[1];
  let zMin = g.dims[2];
  let zMax = -1;
  for (let z = 0; z < g.dims[2]; z++) {
    for (let i = z * plane; i < (z + 1) * plane; i++) {
      if (g.lab[i] !== 0) {
        zMin = Math.min(zMin, z);
        zMax = Math.max(zMax, z);
        break;
      }
    }
  }
  const slab = Math.min(S, g.dims[2]);
  const lastStart = Math.max(zMin, Math.min(zMax, g.dims[2]) - slab + 1);
  const root = new Rng(seed);
  const built: BuiltSite[] = [];
  for (let s = 0; s < opts.sites; s++) {
    const scanner = scanners[s % scanners.length];
    const shift = shifts[s % shifts.length];
    const siteRng = root.fork();
    const cases: DecathlonCase[] = [];
    for (let c = 0; c < casesPerSite + testCases; c++) {
      const caseRng = siteRng.fork();
      const z0 = zMin + caseRng.int(Math.max(1, lastStart - zMin + 1));
      const { img, lab } = warpSlab(g, z0, slab, caseRng);
      // T2-like: bright fluid, dark white matter; taken before the scanner so both contrasts share its shift.
      const t2 = opts.contrasts === 2 ? img.map((v) => (v > 0.05 ? Math.max(0, 1.25 - v) : 0)) : undefined;
      const bias = sampleBiasField(caseRng);
      for (let k = 0; k < slab; k++) {
        applyScannerShift(img, k * plane, g.dims[1], g.dims[0], (2 * (z0 + k + 0.5)) / g.dims[2] - 1, shift, bias, caseRng);
      }
      if (t2) for (let k = 0; k < slab; k++) applyScannerShift(t2, k * plane, g.dims[1], g.dims[0], (2 * (z0 + k + 0.5)) / g.dims[2] - 1, shift, bias, caseRng);
      // The slab's voxel (i, j, k) is the downsampled grid's (i, j, z0 + k).
      const affine = mul44(g.affine, [
        [1, 0, 0, 0],
        [0, 1, 0, 0],
        [0, 0, 1, z0],
        [0, 0, 0, 1],
      ]);
      const id = `site${s + 1}_case${String(c).padStart(3, '0')}`;
      const like = geometryFromAffine([g.dims[0], g.dims[1], slab], affine);
      const channels = t2 ? { channels: [img, t2] } : {};
      cases.push(c < casesPerSite ? { id, image: img, ...channels, label: lab, like } : { id, image: img, ...channels, like });
    }
    const out = join(opts.out, `site-${s + 1}`);
    await writeDecathlonDataset(
      out,
      {
        name: `mricron-site-${s + 1}`,
        description: `Colin27 (ch2) T1 with ${scheme} labels from AAL, ${slab}-slice slabs at ${f} mm, simulated scanner ${typeof scanner === 'string' ? scanner : 'custom'}`,
        labels: LABEL_NAMES[scheme],
        modality: opts.contrasts === 2 ? ['T1', 'T2-like (simulated)'] : 'T1',
        extra: { fedsfda: { source: 'mricron-data', scanner, labelScheme: scheme, seed, downsample: f } },
      },
      cases,
    );
    built.push({ dir: out, scanner, cases: casesPerSite });
  }
  return built;
}
