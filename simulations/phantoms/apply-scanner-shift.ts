/**
 * Applies a scanner shift to one noise-free phantom slice, in the order a real acquisition imposes:
 * tissue contrast (intensity map, gamma) -> receive-coil bias field (multiplicative) -> point-spread
 * function (blur) -> limited acquisition resolution -> thermal noise (additive, last).
 */
import type { Rng } from '../../protocol/common/index.ts';
import { gaussianBlur2d, resizeBilinear } from '../../site-agent/data/index.ts';
import type { IntensityMap, ScannerShift } from './scanner-shift.ts';

/** Coefficients of a smooth field s(x, y, z) in [-1, 1]: a normalised low-order polynomial. */
export interface BiasFieldCoefficients {
  readonly c: Float64Array;
}

/** Draws one case's bias field shape (the strength comes from the shift spec). */
export function sampleBiasField(rng: Rng): BiasFieldCoefficients {
  const c = new Float64Array(7);
  let sum = 0;
  for (let i = 0; i < c.length; i++) {
    c[i] = rng.normal();
    sum += Math.abs(c[i]);
  }
  // |basis| <= 1 on [-1,1]^3, so dividing by the L1 norm bounds |s| by 1.
  for (let i = 0; i < c.length; i++) c[i] /= sum || 1;
  return { c };
}

function biasAt(b: BiasFieldCoefficients, x: number, y: number, z: number): number {
  const c = b.c;
  return c[0] * x + c[1] * y + c[2] * z + c[3] * x * y + c[4] * (2 * x * x - 1) + c[5] * (2 * y * y - 1) + c[6] * x * z;
}

function mapIntensity(m: IntensityMap, v: number): number {
  switch (m.kind) {
    case 'linear':
      return m.scale * v + m.offset;
    case 'invert':
      return 1 - v;
    case 'piecewise': {
      const p = m.points;
      if (v <= p[0][0]) return p[0][1];
      for (let i = 1; i < p.length; i++) {
        if (v <= p[i][0]) {
          const t = (v - p[i - 1][0]) / (p[i][0] - p[i - 1][0]);
          return p[i - 1][1] + t * (p[i][1] - p[i - 1][1]);
        }
      }
      return p[p.length - 1][1];
    }
    default: {
      const never: never = m;
      throw new Error(`unhandled intensity map ${JSON.stringify(never)}`);
    }
  }
}

/**
 * Shifts the h x w slice stored at `img[offset..offset+h*w)` in place. `z` is the slice's normalised
 * height (for the 3D bias field); `noiseRng` supplies the thermal noise.
 */
export function applyScannerShift(
  img: Float32Array,
  offset: number,
  h: number,
  w: number,
  z: number,
  shift: ScannerShift,
  bias: BiasFieldCoefficients,
  noiseRng: Rng,
): void {
  const n = h * w;
  const view = img.subarray(offset, offset + n);
  const map = shift.intensityMap;
  const gamma = shift.gamma;
  const strength = shift.biasField?.strength ?? 0;
  if (map !== undefined || gamma !== undefined || strength > 0) {
    for (let r = 0; r < h; r++) {
      const y = (2 * (r + 0.5)) / h - 1;
      for (let c = 0; c < w; c++) {
        const i = r * w + c;
        let v = view[i];
        if (map !== undefined) v = mapIntensity(map, v);
        // Gamma is defined on non-negative signal; clamping to [0,1] first mirrors a detector's range.
        if (gamma !== undefined) v = Math.pow(Math.min(1, Math.max(0, v)), gamma);
        if (strength > 0) v *= Math.exp(strength * biasAt(bias, (2 * (c + 0.5)) / w - 1, y, z));
        view[i] = v;
      }
    }
  }
  if (shift.blur !== undefined && shift.blur.sigma > 0) gaussianBlur2d(view, h, w, shift.blur.sigma);
  if (shift.resolution !== undefined && shift.resolution.factor > 1) {
    const f = shift.resolution.factor;
    const lh = Math.max(1, Math.round(h / f));
    const lw = Math.max(1, Math.round(w / f));
    // Anti-alias before decimating, as the k-space truncation of a low-resolution scan would.
    gaussianBlur2d(view, h, w, 0.5 * f);
    const low = resizeBilinear(view, h, w, lh, lw);
    view.set(resizeBilinear(low, lh, lw, h, w));
  }
  if (shift.noise !== undefined && shift.noise.sigma > 0) {
    const s = shift.noise.sigma;
    for (let i = 0; i < n; i++) view[i] += s * noiseRng.normal();
  }
}
