/**
 * The reading rules that make fedsfda agree with nibabel 5.0 (the reference the `check:nibabel` script compares
 * against on real files): header/image pairs, io_orientation axis by axis, scale factors, unit-free values.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computeReorientation, encodeNifti, geometryFromSpacing, NiftiError, orientationCode, readNifti, readNiftiChannels, readNiftiHeader, type NiftiErrorCode } from './index.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-niftiref-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function codeOf(p: Promise<unknown>): Promise<{ code: NiftiErrorCode; message: string }> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(NiftiError);
    return { code: (e as NiftiError).code, message: (e as NiftiError).message };
  }
  throw new Error('expected a NiftiError');
}

const dims: [number, number, number] = [6, 5, 4];
const like = geometryFromSpacing(dims, [1, 2, 3]);
const values = new Float32Array(120).map((_, i) => i * 3 - 50);

/** A single-file image re-cut into a pair: the header (magic ni1, vox_offset 0) and the raw voxels. */
function asPair(single: Uint8Array): { hdr: Uint8Array; img: Uint8Array } {
  const hdr = single.slice(0, 348);
  const dv = new DataView(hdr.buffer);
  dv.setFloat32(108, 0, true);
  hdr.set([0x6e, 0x69, 0x31, 0], 344);
  return { hdr, img: single.slice(352) };
}

describe('NIfTI-1 pairs (.hdr + .img, magic ni1)', () => {
  it('reads a pair by either name, gzipped or not, with the same voxels as the single file', async () => {
    const single = encodeNifti('s', values, like, { datatype: 'int16' });
    const { hdr, img } = asPair(single);
    await writeFile(join(dir, 'p.hdr'), hdr);
    await writeFile(join(dir, 'p.img'), img);
    await writeFile(join(dir, 'z.hdr.gz'), gzipSync(hdr));
    await writeFile(join(dir, 'z.img.gz'), gzipSync(img));
    await writeFile(join(dir, 'U.HDR'), hdr);
    await writeFile(join(dir, 'U.IMG'), img);
    for (const name of ['p.hdr', 'p.img', 'z.hdr.gz', 'z.img.gz', 'U.HDR']) {
      const v = await readNifti(join(dir, name));
      expect(v.pair).toBe(true);
      expect(v.dims).toEqual(dims);
      expect(Array.from(v.data)).toEqual(Array.from(values));
    }
    expect((await readNiftiHeader(join(dir, 'p.img'))).spacing).toEqual([1, 2, 3]);
  });

  it('names the missing or short companion, and refuses a single-file header in a .hdr', async () => {
    const { hdr, img } = asPair(encodeNifti('s', values, like, { datatype: 'int16' }));
    await writeFile(join(dir, 'alone.hdr'), hdr);
    const missing = await codeOf(readNifti(join(dir, 'alone.hdr')));
    expect(missing.code).toBe('NOT_FOUND');
    expect(missing.message).toMatch(/alone\.img/);
    await writeFile(join(dir, 'short.hdr'), hdr);
    await writeFile(join(dir, 'short.img'), img.subarray(0, 100));
    const short = await codeOf(readNifti(join(dir, 'short.hdr')));
    expect(short.code).toBe('TRUNCATED');
    expect(short.message).toMatch(/short\.img/);
    await writeFile(join(dir, 'single.hdr'), encodeNifti('s', values, like));
    await writeFile(join(dir, 'single.img'), img);
    expect((await codeOf(readNifti(join(dir, 'single.hdr')))).code).toBe('BAD_MAGIC');
  });
});

describe('orientation exactly as nibabel io_orientation', () => {
  it('goes axis by axis on a strongly oblique affine (nibabel 5.0 gives ILA here; the largest cosine overall gives another order)', () => {
    // Found by comparing nibabel's io_orientation with a global greedy assignment on random rotations.
    const A = [
      [0.5782, -0.8781, -1.7051, 0],
      [0.4331, -0.5553, 2.4655, 0],
      [-0.6915, -1.082, 0.1185, 0],
      [0, 0, 0, 1],
    ];
    const r = computeReorientation(A, [4, 5, 6]);
    expect(orientationCode(r)).toBe('ILA');
    expect(r.perm).toEqual([2, 0, 1]);
  });

  it('removes shear before choosing axes (polar decomposition), as nibabel does', () => {
    // Columns 0 and 1 both lean towards world x; after removing the shear, axis 1 is world y.
    const sheared = [
      [1, 0.9, 0, 0],
      [0, 0.5, 0, 0],
      [0, 0, 1, 0],
      [0, 0, 0, 1],
    ];
    expect(orientationCode(computeReorientation(sheared, [2, 2, 2]))).toBe('RAS');
  });
});

describe('scale factors and value range', () => {
  const patched = async (name: string, slope: number, inter: number, data = values, datatype: 'int16' | 'float32' = 'int16'): Promise<string> => {
    const b = encodeNifti(name, data, like, { datatype });
    const dv = new DataView(b.buffer);
    dv.setFloat32(112, slope, true);
    dv.setFloat32(116, inter, true);
    const f = join(dir, name);
    await writeFile(f, b);
    return f;
  };

  it('refuses a valid slope with a NaN or infinite intercept (nibabel: "Valid slope but invalid intercept")', async () => {
    const e = await codeOf(readNifti(await patched('naninter.nii', 2, Number.NaN)));
    expect(e.code).toBe('BAD_HEADER');
    expect(e.message).toMatch(/scl_slope 2 is valid but scl_inter is NaN/);
    expect((await codeOf(readNifti(await patched('infinter.nii', 2, Number.POSITIVE_INFINITY)))).code).toBe('BAD_HEADER');
  });

  it('ignores the intercept when the slope is 0 or not finite (no scaling)', async () => {
    for (const slope of [0, Number.NaN]) {
      const v = await readNifti(await patched(`noscale-${String(slope)}.nii`, slope, Number.NaN));
      expect(Array.from(v.data)).toEqual(Array.from(values));
    }
  });

  it('reports values scaled beyond float32 range as VALUE_OUT_OF_RANGE with the magnitude, not as NaN', async () => {
    const e = await codeOf(readNifti(await patched('overflow.nii', 1e37, 0)));
    expect(e.code).toBe('VALUE_OUT_OF_RANGE');
    expect(e.message).toMatch(/97 voxel\(s\) are beyond the float32 range .*scl_slope 9\.99\d*e\+36.*largest magnitude 3\.070e\+39/);
    expect(e.message).not.toMatch(/NaN/);
  });
});

describe('multi-volume files as channels', () => {
  it('reads every volume of a 4D file in one pass, in file order', async () => {
    const b = encodeNifti('c', values, like);
    const dv = new DataView(b.buffer);
    dv.setInt16(40, 4, true);
    dv.setInt16(48, 3, true);
    const out = new Uint8Array(b.length + 2 * 120 * 4);
    out.set(b);
    new Float32Array(out.buffer, b.length, 240).set(new Float32Array(240).map((_, i) => (i < 120 ? 1000 : 2000) + (i % 120)));
    const f = join(dir, 'three.nii.gz');
    await writeFile(f, gzipSync(out));
    const ch = await readNiftiChannels(f);
    expect(ch.channels.map((c) => c[7])).toEqual([values[7], 1007, 2007]);
    expect((await codeOf(readNiftiChannels(f, { maxBytes: 1000 }))).code).toBe('TOO_LARGE');
  });
});
