import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generatePhantomVolume } from '../../../simulations/phantoms/index.ts';
import {
  applyAffine,
  decodeNifti,
  encodeNifti,
  geometryFromAffine,
  geometryFromSpacing,
  labelValues,
  NIFTI_DATATYPES,
  NiftiError,
  readNifti,
  readNiftiHeader,
  toLabelMap,
  writeNifti,
  type Mat44,
  type NiftiDatatypeName,
  type NiftiErrorCode,
} from './index.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-nifti-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const vol = generatePhantomVolume({ seed: 11, dims: [12, 10, 8], spacing: [0.8, 1.2, 3], numClasses: 4, shift: 'scanner-b' });

async function expectNiftiError(p: Promise<unknown>, code: NiftiErrorCode, file?: string): Promise<NiftiError> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(NiftiError);
  expect((err as NiftiError).code).toBe(code);
  if (file) expect((err as NiftiError).file).toBe(file);
  return err as NiftiError;
}

/** Values representable in each datatype (after slope/inter), derived from the phantom. */
function valuesFor(dt: NiftiDatatypeName, slope: number, inter: number): Float32Array {
  const d = NIFTI_DATATYPES[dt];
  const out = new Float32Array(vol.image.length);
  for (let i = 0; i < out.length; i++) {
    if (!d.integer) out[i] = vol.image[i] * 100 - 20;
    else {
      const span = Math.min(d.max - d.min, 200);
      const raw = Math.round(d.min + (vol.label[i] * 37 + (i % 11)) % span);
      out[i] = raw * slope + inter;
    }
  }
  return out;
}

describe('NIfTI round trips', () => {
  const cases: Array<[NiftiDatatypeName, 1 | 2, boolean, boolean]> = [];
  for (const dt of Object.keys(NIFTI_DATATYPES) as NiftiDatatypeName[]) {
    cases.push([dt, 1, false, false], [dt, 2, true, false], [dt, 1, true, true]);
  }
  it.each(cases)('%s NIfTI-%d gz=%s bigEndian=%s with scl_slope', async (dt, version, gz, bigEndian) => {
    const slope = NIFTI_DATATYPES[dt].integer ? 0.5 : 2;
    const inter = NIFTI_DATATYPES[dt].integer ? -3 : 1;
    const values = valuesFor(dt, slope, inter);
    const like = geometryFromSpacing(vol.dims, vol.spacing);
    const file = join(dir, `rt-${dt}-${version}-${bigEndian ? 'be' : 'le'}.nii${gz ? '.gz' : ''}`);
    await writeNifti(file, values, like, { datatype: dt, sclSlope: slope, sclInter: inter, version, bigEndian });
    const back = await readNifti(file);
    expect(back.version).toBe(version);
    expect(back.datatype).toBe(dt);
    expect(back.littleEndian).toBe(!bigEndian);
    expect(back.dims).toEqual([12, 10, 8]);
    expect(back.spacing[0]).toBeCloseTo(0.8, 5);
    expect(back.spacing[1]).toBeCloseTo(1.2, 5);
    expect(back.spacing[2]).toBeCloseTo(3, 5);
    expect(back.orientation).toBe('RAS');
    expect(back.sclSlope).toBe(slope);
    for (let i = 0; i < values.length; i++) {
      if (Math.abs(back.data[i] - values[i]) > 1e-4 * Math.max(1, Math.abs(values[i]))) {
        throw new Error(`voxel ${i}: wrote ${values[i]}, read ${back.data[i]}`);
      }
    }
  });

  it('writes a label map with the geometry of an oblique, LPS-stored source and reads it back aligned', async () => {
    // Source stored LPS (x towards Left, y towards Posterior), slightly rotated, with an offset.
    const th = 0.1;
    const aff: Mat44 = [
      [-0.8 * Math.cos(th), -1.2 * Math.sin(th), 0, 40],
      [-0.8 * Math.sin(th), -1.2 * Math.cos(th), 0, 30],
      [0, 0, 3, -10],
      [0, 0, 0, 1],
    ];
    const like = geometryFromAffine(vol.dims, aff);
    const srcFile = join(dir, 'lps-image.nii.gz');
    await writeNifti(srcFile, vol.image, like, { voxelOrder: 'source' });
    const img = await readNifti(srcFile);
    expect(img.orientation).toBe('LPS');
    expect(img.affineSource).toBe('sform');
    // Canonical order is RAS: world x must increase along the first canonical axis.
    const w0 = applyAffine(img.affine, [0, 0, 0]);
    const w1 = applyAffine(img.affine, [1, 0, 0]);
    expect(w1[0]).toBeGreaterThan(w0[0]);
    // A label map predicted in canonical order and written "like" the image keeps the image's header geometry.
    const labels = new Uint8Array(img.data.length);
    for (let i = 0; i < labels.length; i++) labels[i] = img.data[i] > 0.5 ? 1 : 0;
    const predFile = join(dir, 'lps-pred.nii.gz');
    await writeNifti(predFile, labels, img, { label: true });
    const pred = await readNifti(predFile);
    expect(pred.datatype).toBe('uint8');
    expect(pred.geometry.sourceDims).toEqual(img.geometry.sourceDims);
    expect(pred.orientation).toBe('LPS');
    for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) expect(pred.geometry.srow[r][c]).toBeCloseTo(aff[r][c], 5);
    expect(pred.geometry.qformCode).toBe(2);
    expect(Array.from(pred.data)).toEqual(Array.from(labels));
  });

  it('a flipped sform and a permuted qform-only file give the same canonical array', async () => {
    const [X, Y, Z] = vol.dims;
    const ras = geometryFromSpacing(vol.dims, vol.spacing);
    const a = join(dir, 'ras.nii');
    await writeNifti(a, vol.image, ras, { voxelOrder: 'source' });
    // Same anatomy stored with x reversed on disk; the sform says so (negative x column, origin moved).
    const flipped = new Float32Array(vol.image.length);
    for (let z = 0; z < Z; z++) for (let y = 0; y < Y; y++) for (let x = 0; x < X; x++) flipped[x + X * (y + Y * z)] = vol.image[X - 1 - x + X * (y + Y * z)];
    const fAff: Mat44 = [
      [-0.8, 0, 0, 0.8 * (X - 1)],
      [0, 1.2, 0, 0],
      [0, 0, 3, 0],
      [0, 0, 0, 1],
    ];
    const b = join(dir, 'flipped.nii');
    await writeNifti(b, flipped, geometryFromAffine(vol.dims, fAff), { voxelOrder: 'source' });
    // Same anatomy stored with x and y swapped (y fastest), described only by a qform.
    const swapped = new Float32Array(vol.image.length);
    for (let z = 0; z < Z; z++) for (let y = 0; y < Y; y++) for (let x = 0; x < X; x++) swapped[y + Y * (x + X * z)] = vol.image[x + X * (y + Y * z)];
    const sAff: Mat44 = [
      [0, 0.8, 0, 0],
      [1.2, 0, 0, 0],
      [0, 0, 3, 0],
      [0, 0, 0, 1],
    ];
    const g = geometryFromAffine([Y, X, Z], sAff);
    const qOnly = { ...g, geometry: { ...g.geometry, sformCode: 0 } };
    const c = join(dir, 'swapped-qform.nii');
    await writeNifti(c, swapped, qOnly, { voxelOrder: 'source' });
    const ra = await readNifti(a);
    const rb = await readNifti(b);
    const rc = await readNifti(c);
    expect(rb.orientation).toBe('LAS');
    expect(rc.orientation).toBe('ARS');
    expect(rc.affineSource).toBe('qform');
    expect(rc.dims).toEqual([X, Y, Z]);
    expect(rc.spacing.map((s) => +s.toFixed(5))).toEqual([0.8, 1.2, 3]);
    expect(Array.from(rb.data)).toEqual(Array.from(ra.data));
    expect(Array.from(rc.data)).toEqual(Array.from(ra.data));
    // The qform of rc is a 180-degree rotation whose float32 quaternion leaves w^2 slightly above 0; nibabel (and so
    // fedsfda) fills w = sqrt(w^2) without renormalising, which moves that affine by ~1e-3.
    for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) expect(rb.affine[i][j]).toBeCloseTo(ra.affine[i][j], 4);
    for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) expect(rc.affine[i][j]).toBeCloseTo(ra.affine[i][j], 2);
  });

  it('reads the header of a large .nii.gz from its first bytes only', async () => {
    // Noise does not compress, so the file is far larger than the 64 KiB header peek.
    const dims: [number, number, number] = [48, 48, 24];
    const noise = new Float32Array(48 * 48 * 24).map((_, i) => Math.sin(i * 12.9898) * 43758.5453 % 1);
    const f = join(dir, 'large.nii.gz');
    await writeNifti(f, noise, geometryFromSpacing(dims, [1, 1, 1]));
    expect((await stat(f)).size).toBeGreaterThan(1 << 16);
    const h = await readNiftiHeader(f);
    expect(h.dims).toEqual(dims);
    expect(h.datatype).toBe('float32');
    expect((await readNifti(f)).data[100]).toBeCloseTo(noise[100], 6);
  });

  it('reads 4D files only with an explicit volume index', async () => {
    const like = geometryFromSpacing([4, 3, 2], [1, 1, 1]);
    const one = encodeNifti('x', new Float32Array(24).map((_, i) => i), like);
    // Patch to 4D with 2 volumes and append a second volume.
    const dv = new DataView(one.buffer);
    dv.setInt16(40, 4, true);
    dv.setInt16(48, 2, true);
    const four = new Uint8Array(one.length + 24 * 4);
    four.set(one);
    new Float32Array(four.buffer, one.length, 24).fill(7);
    const f = join(dir, 'four.nii');
    await writeFile(f, four);
    await expectNiftiError(readNifti(f), 'UNSUPPORTED_DIMENSIONS', f);
    const v1 = await readNifti(f, { volumeIndex: 1 });
    expect(v1.data.every((v) => v === 7)).toBe(true);
    expect((await readNifti(f, { volumeIndex: 0 })).data[5]).toBe(5);
    await expectNiftiError(readNifti(f, { volumeIndex: 2 }), 'UNSUPPORTED_DIMENSIONS', f);
  });

  it('reads every volume of a 4D .nii.gz larger than one inflate chunk, and ignores bytes after the voxel data', async () => {
    // 3 volumes of 40x40x12 float32 noise (75 KiB each, incompressible): volume 0 ends inside a later 64 KiB
    // inflate chunk, which used to be counted as overflow (TOO_LARGE) before the stop check.
    const dims: [number, number, number] = [40, 40, 12];
    const n = dims[0] * dims[1] * dims[2];
    const like = geometryFromSpacing(dims, [1, 1, 1]);
    const vols = [0, 1, 2].map((k) => new Float32Array(n).map((_, i) => ((Math.sin((i + k * n) * 12.9898) * 43758.5453) % 1) + k * 10));
    const one = encodeNifti('x', vols[0], like);
    const dv = new DataView(one.buffer);
    dv.setInt16(40, 4, true);
    dv.setInt16(48, 3, true);
    const trailing = 5000;
    const four = new Uint8Array(one.length + 2 * n * 4 + trailing);
    four.set(one);
    four.set(new Uint8Array(vols[1].buffer), one.length);
    four.set(new Uint8Array(vols[2].buffer), one.length + n * 4);
    four.fill(0x5a, one.length + 2 * n * 4);
    const f = join(dir, 'four.nii.gz');
    await writeFile(f, gzipSync(four));
    for (const k of [0, 1, 2]) {
      const v = await readNifti(f, { volumeIndex: k });
      expect(v.volumeIndex).toBe(k);
      expect(Array.from(v.data.subarray(0, 50))).toEqual(Array.from(vols[k].subarray(0, 50)));
      expect(v.data[n - 1]).toBe(vols[k][n - 1]);
    }
    // The limit still holds: reading volume 2 needs ~230 KiB inflated, over a 100 KiB limit.
    await expectNiftiError(readNifti(f, { volumeIndex: 2, maxBytes: 100_000 }), 'TOO_LARGE', f);
  });
});

describe('hostile NIfTI files', () => {
  const like = geometryFromSpacing([8, 8, 4], [1, 1, 1]);
  const good = (): Uint8Array => encodeNifti('good', new Float32Array(256).map((_, i) => i % 5), like);

  it('empty file, missing file, directory named like a file', async () => {
    const empty = join(dir, 'empty.nii');
    await writeFile(empty, new Uint8Array(0));
    await expectNiftiError(readNifti(empty), 'EMPTY_FILE', empty);
    await expectNiftiError(readNifti(join(dir, 'nope.nii')), 'NOT_FOUND');
    const d = join(dir, 'folder.nii.gz');
    await mkdir(d);
    await expectNiftiError(readNifti(d), 'NOT_A_FILE', d);
    await expectNiftiError(readNiftiHeader(d), 'NOT_A_FILE', d);
  });

  it('wrong magic, hdr/img header, short junk', async () => {
    const b = good();
    b[345] = 'x'.charCodeAt(0);
    const f = join(dir, 'magic.nii');
    await writeFile(f, b);
    await expectNiftiError(readNifti(f), 'BAD_MAGIC', f);
    const h = good();
    h[345] = 'i'.charCodeAt(0);
    const fh = join(dir, 'pair.nii');
    await writeFile(fh, h);
    const e = await expectNiftiError(readNifti(fh), 'BAD_MAGIC', fh);
    expect(e.message).toMatch(/\.hdr\/\.img/);
    const junk = join(dir, 'junk.nii.gz');
    await writeFile(junk, 'hello, not an image');
    await expectNiftiError(readNifti(junk), 'BAD_MAGIC', junk);
  });

  it('truncated .nii and truncated / corrupt .nii.gz', async () => {
    const b = good();
    const t = join(dir, 'trunc.nii');
    await writeFile(t, b.subarray(0, b.length - 100));
    await expectNiftiError(readNifti(t), 'TRUNCATED', t);
    const gz = gzipSync(b);
    const tg = join(dir, 'trunc.nii.gz');
    await writeFile(tg, gz.subarray(0, Math.floor(gz.length / 2)));
    await expectNiftiError(readNifti(tg), 'TRUNCATED', tg);
    const tg2 = join(dir, 'trunc-header.nii.gz');
    await writeFile(tg2, gz.subarray(0, 12));
    await expectNiftiError(readNifti(tg2), 'TRUNCATED', tg2);
    const bad = gz.slice();
    for (let i = 12; i < 40; i++) bad[i] ^= 0xff;
    const cg = join(dir, 'corrupt.nii.gz');
    await writeFile(cg, bad);
    let err: unknown;
    try {
      await readNifti(cg);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NiftiError);
    expect(['CORRUPT_GZIP', 'TRUNCATED']).toContain((err as NiftiError).code);
  });

  it('refuses allocation bombs before allocating', async () => {
    // A 400-byte file whose header promises 30000^3 int16 voxels.
    const b = good().slice(0, 400);
    const dv = new DataView(b.buffer);
    for (let i = 1; i <= 3; i++) dv.setInt16(40 + 2 * i, 30000, true);
    const f = join(dir, 'bomb.nii');
    await writeFile(f, b);
    const e = await expectNiftiError(readNifti(f), 'TOO_LARGE', f);
    expect(e.message).toMatch(/30000x30000x30000/);
    // A gzip bomb in miniature: 256 KiB of zeros is ~300 bytes compressed; a 128 KiB limit stops the inflation.
    const bigLike = geometryFromSpacing([64, 64, 64], [1, 1, 1]);
    const big = gzipSync(encodeNifti('big', new Uint8Array(64 * 64 * 64), bigLike, { datatype: 'uint8', voxelOrder: 'source' }));
    expect(big.length).toBeLessThan(4096);
    const fb = join(dir, 'zeros.nii.gz');
    await writeFile(fb, big);
    await expectNiftiError(readNifti(fb, { maxBytes: 128 << 10 }), 'TOO_LARGE', fb);
    expect((await readNifti(fb, { maxBytes: 4 << 20 })).dims).toEqual([64, 64, 64]);
  });

  it('unsupported datatype, bad bitpix, bad dims, bad vox_offset', async () => {
    const patch = async (name: string, fn: (dv: DataView) => void): Promise<string> => {
      const b = good();
      fn(new DataView(b.buffer));
      const f = join(dir, name);
      await writeFile(f, b);
      return f;
    };
    const cplx = await patch('complex.nii', (dv) => {
      dv.setInt16(70, 32, true);
      dv.setInt16(72, 64, true);
    });
    const e = await expectNiftiError(readNifti(cplx), 'UNSUPPORTED_DATATYPE', cplx);
    expect(e.message).toMatch(/complex64/);
    // bitpix is redundant with the datatype; like nibabel, the datatype wins.
    expect((await readNifti(await patch('bitpix.nii', (dv) => dv.setInt16(72, 8, true)))).datatype).toBe('float32');
    await expectNiftiError(readNifti(await patch('negdim.nii', (dv) => dv.setInt16(42, -5, true))), 'BAD_HEADER');
    await expectNiftiError(readNifti(await patch('ndim.nii', (dv) => dv.setInt16(40, 9, true))), 'BAD_HEADER');
    await expectNiftiError(readNifti(await patch('voxoff.nii', (dv) => dv.setFloat32(108, 12, true))), 'BAD_HEADER');
  });

  it('NaN/Inf voxels are refused (or zeroed on request)', async () => {
    const v = new Float32Array(256).fill(1);
    v[3] = Number.NaN;
    v[100] = Number.POSITIVE_INFINITY;
    const f = join(dir, 'nan.nii.gz');
    await writeNifti(f, v, like);
    const e = await expectNiftiError(readNifti(f), 'NON_FINITE', f);
    expect(e.message).toMatch(/2 voxel/);
    const z = await readNifti(f, { nonFinite: 'zero' });
    expect(z.data[3]).toBe(0);
    expect(z.data[4]).toBe(1);
  });

  it('label maps with unexpected values are refused by toLabelMap', () => {
    expect(() => toLabelMap('l.nii', new Float32Array([0, 1, 2.5]))).toThrow(NiftiError);
    expect(() => toLabelMap('l.nii', new Float32Array([0, 1, 300]))).toThrow(/300/);
    expect(() => toLabelMap('l.nii', new Float32Array([0, 1, 7]), [0, 1, 2])).toThrow(/7 \(x1\)/);
    expect(Array.from(toLabelMap('l.nii', new Float32Array([0, 2, 1]), [0, 1, 2]))).toEqual([0, 2, 1]);
    expect(labelValues(new Uint8Array([3, 0, 3, 1]))).toEqual([0, 1, 3]);
  });

  it('decodeNifti errors name the file and never throw RangeError', () => {
    const b = good();
    for (let cut = 0; cut < b.length; cut += 37) {
      try {
        decodeNifti('cut.nii', b.subarray(0, cut));
      } catch (e) {
        expect(e).toBeInstanceOf(NiftiError);
        expect((e as NiftiError).file).toBe('cut.nii');
      }
    }
  });
});
