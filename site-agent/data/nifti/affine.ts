/**
 * NIfTI voxel-to-world transforms (world = RAS+ millimetres, as the NIfTI-1 standard defines it).
 * The quaternion conversions follow nifti1_io.c (`nifti_quatern_to_mat44`, `nifti_mat44_to_quatern`),
 * "METHOD 2" of the nifti1.h header comments.
 */

/** Row-major 4x4 matrix. */
export type Mat44 = number[][];

export function identity44(): Mat44 {
  return [
    [1, 0, 0, 0],
    [0, 1, 0, 0],
    [0, 0, 1, 0],
    [0, 0, 0, 1],
  ];
}

export function mul44(a: Mat44, b: Mat44): Mat44 {
  const out: Mat44 = [[], [], [], []];
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 4; j++) {
      let s = 0;
      for (let k = 0; k < 4; k++) s += a[i][k] * b[k][j];
      out[i][j] = s;
    }
  }
  return out;
}

/** Applies the affine to a voxel index, giving world coordinates. */
export function applyAffine(a: Mat44, ijk: readonly [number, number, number]): [number, number, number] {
  const r: [number, number, number] = [0, 0, 0];
  for (let i = 0; i < 3; i++) r[i] = a[i][0] * ijk[0] + a[i][1] * ijk[1] + a[i][2] * ijk[2] + a[i][3];
  return r;
}

export interface Quatern {
  b: number;
  c: number;
  d: number;
  qx: number;
  qy: number;
  qz: number;
  /** Voxel sizes implied by the matrix columns. */
  dx: number;
  dy: number;
  dz: number;
  /** -1 when the voxel axes form a left-handed system (stored in pixdim[0]). */
  qfac: 1 | -1;
}

/** nifti1_io.c nifti_quatern_to_mat44. */
export function quaternToMat44(q: Quatern): Mat44 {
  let b = q.b;
  let c = q.c;
  let d = q.d;
  let a = 1 - (b * b + c * c + d * d);
  if (a < 1e-7) {
    // A 180-degree rotation: renormalise (b, c, d) and take a = 0.
    const s = 1 / Math.sqrt(b * b + c * c + d * d);
    b *= s;
    c *= s;
    d *= s;
    a = 0;
  } else {
    a = Math.sqrt(a);
  }
  const xd = q.dx > 0 ? q.dx : 1;
  const yd = q.dy > 0 ? q.dy : 1;
  let zd = q.dz > 0 ? q.dz : 1;
  if (q.qfac < 0) zd = -zd;
  return [
    [(a * a + b * b - c * c - d * d) * xd, 2 * (b * c - a * d) * yd, 2 * (b * d + a * c) * zd, q.qx],
    [2 * (b * c + a * d) * xd, (a * a + c * c - b * b - d * d) * yd, 2 * (c * d - a * b) * zd, q.qy],
    [2 * (b * d - a * c) * xd, 2 * (c * d + a * b) * yd, (a * a + d * d - c * c - b * b) * zd, q.qz],
    [0, 0, 0, 1],
  ];
}

/** nifti1_io.c nifti_mat44_to_quatern (assumes an orthogonal rotation part; shear is dropped). */
export function mat44ToQuatern(m: Mat44): Quatern {
  let r11 = m[0][0];
  let r12 = m[0][1];
  let r13 = m[0][2];
  let r21 = m[1][0];
  let r22 = m[1][1];
  let r23 = m[1][2];
  let r31 = m[2][0];
  let r32 = m[2][1];
  let r33 = m[2][2];
  let xd = Math.hypot(r11, r21, r31);
  let yd = Math.hypot(r12, r22, r32);
  let zd = Math.hypot(r13, r23, r33);
  if (xd === 0) {
    r11 = 1;
    r21 = r31 = 0;
    xd = 1;
  }
  if (yd === 0) {
    r22 = 1;
    r12 = r32 = 0;
    yd = 1;
  }
  if (zd === 0) {
    r33 = 1;
    r13 = r23 = 0;
    zd = 1;
  }
  const dx = xd;
  const dy = yd;
  const dz = zd;
  r11 /= xd;
  r21 /= xd;
  r31 /= xd;
  r12 /= yd;
  r22 /= yd;
  r32 /= yd;
  r13 /= zd;
  r23 /= zd;
  r33 /= zd;
  const det = r11 * r22 * r33 - r11 * r32 * r23 - r21 * r12 * r33 + r21 * r32 * r13 + r31 * r12 * r23 - r31 * r22 * r13;
  let qfac: 1 | -1 = 1;
  if (det < 0) {
    qfac = -1;
    r13 = -r13;
    r23 = -r23;
    r33 = -r33;
  }
  let a = r11 + r22 + r33 + 1;
  let b: number;
  let c: number;
  let d: number;
  if (a > 0.5) {
    a = 0.5 * Math.sqrt(a);
    b = (0.25 * (r32 - r23)) / a;
    c = (0.25 * (r13 - r31)) / a;
    d = (0.25 * (r21 - r12)) / a;
  } else {
    const xx = 1 + r11 - (r22 + r33);
    const yy = 1 + r22 - (r11 + r33);
    const zz = 1 + r33 - (r11 + r22);
    if (xx > 1) {
      b = 0.5 * Math.sqrt(xx);
      c = (0.25 * (r12 + r21)) / b;
      d = (0.25 * (r13 + r31)) / b;
      a = (0.25 * (r32 - r23)) / b;
    } else if (yy > 1) {
      c = 0.5 * Math.sqrt(yy);
      b = (0.25 * (r12 + r21)) / c;
      d = (0.25 * (r23 + r32)) / c;
      a = (0.25 * (r13 - r31)) / c;
    } else {
      d = 0.5 * Math.sqrt(zz);
      b = (0.25 * (r13 + r31)) / d;
      c = (0.25 * (r23 + r32)) / d;
      a = (0.25 * (r21 - r12)) / d;
    }
    if (a < 0) {
      b = -b;
      c = -c;
      d = -d;
    }
  }
  return { b, c, d, qx: m[0][3], qy: m[1][3], qz: m[2][3], dx, dy, dz, qfac };
}

/** True when the 3x3 part is finite and invertible (a usable orientation). */
export function isUsableAffine(m: Mat44): boolean {
  for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) if (!Number.isFinite(m[i][j])) return false;
  const det =
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
    m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
    m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
  return Math.abs(det) > 1e-12;
}
