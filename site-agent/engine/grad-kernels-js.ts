/**
 * Two gradient kernels written in plain JS over Float32Arrays, because the stock ones are wrong:
 * - tfjs-backend-cpu 4.22 ResizeNearestNeighborGrad offsets dy with the *input's* batch stride, so every
 *   image after the first gets the wrong gradient when batch > 1 (and it ignores halfPixelCenters).
 *   Used by the fedsfda-native backend (which otherwise inherits the cpu kernel) and kept in sync with
 *   the forward mapping of tfjs's cpu ResizeNearestNeighbor.
 * - tfjs-backend-wasm 4.22 MaxPoolGrad drops gradients when the input is not square (e.g. 4x6).
 *   Used by the wasm backend; semantics are the cpu backend's (gradient to the first maximum).
 * Both are scatter-adds (the exact transpose of the forward op), O(size of dy).
 */
import * as tf from '@tensorflow/tfjs-core';

/** Source index of output coordinate `o` in tfjs's nearest-neighbour resize (cpu ResizeNearestNeighbor). */
function nearestSource(o: number, inSize: number, outSize: number, alignCorners: boolean, halfPixelCenters: boolean): number {
  const effIn = alignCorners && outSize > 1 ? inSize - 1 : inSize;
  const effOut = alignCorners && outSize > 1 ? outSize - 1 : outSize;
  const ratio = effIn / effOut;
  const frac = halfPixelCenters ? ratio * (o + 0.5) : ratio * o;
  let s = Math.min(inSize - 1, alignCorners ? Math.round(frac) : Math.floor(frac));
  if (halfPixelCenters) s = Math.max(0, s);
  return s;
}

/** dx[N,H,W,C] (zeroed by the caller) += transpose of the nearest resize applied to dy[N,OH,OW,C]. */
export function resizeNearestGradInto(dy: Float32Array, dx: Float32Array, xShape: number[], dyShape: number[], alignCorners: boolean, halfPixelCenters: boolean): void {
  const [N, H, W, C] = xShape;
  const [, OH, OW] = dyShape;
  const rows = Int32Array.from({ length: OH }, (_, r) => nearestSource(r, H, OH, alignCorners, halfPixelCenters));
  const cols = Int32Array.from({ length: OW }, (_, c) => nearestSource(c, W, OW, alignCorners, halfPixelCenters));
  let o = 0;
  for (let n = 0; n < N; n++)
    for (let r = 0; r < OH; r++) {
      const rowBase = (n * H + rows[r]) * W;
      for (let c = 0; c < OW; c++) {
        const base = (rowBase + cols[c]) * C;
        for (let ch = 0; ch < C; ch++) dx[base + ch] += dy[o++];
      }
    }
}

/** dx (zeroed by the caller) of a 2-D NHWC max-pool: each dy goes to the first maximum of its window. */
export function maxPoolGradInto(dy: Float32Array, x: Float32Array, dx: Float32Array, c: tf.backend_util.Conv2DInfo): void {
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW } = c;
  const { filterHeight: FH, filterWidth: FW, strideHeight: SH, strideWidth: SW, dilationHeight: DH, dilationWidth: DW } = c;
  const PT = c.padInfo.top, PL = c.padInfo.left;
  for (let n = 0; n < N; n++)
    for (let oy = 0; oy < OH; oy++)
      for (let ox = 0; ox < OW; ox++)
        for (let ch = 0; ch < C; ch++) {
          let best = -Infinity, arg = -1;
          for (let ky = 0; ky < FH; ky++) {
            const iy = oy * SH + ky * DH - PT;
            if (iy < 0 || iy >= H) continue;
            for (let kx = 0; kx < FW; kx++) {
              const ix = ox * SW + kx * DW - PL;
              if (ix < 0 || ix >= W) continue;
              const i = ((n * H + iy) * W + ix) * C + ch;
              if (x[i] > best) { best = x[i]; arg = i; }
            }
          }
          if (arg >= 0) dx[arg] += dy[((n * OH + oy) * OW + ox) * C + ch];
        }
}
