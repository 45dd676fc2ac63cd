/**
 * A tiny numerical self-check run on a freshly activated backend: a 3x3 'same' convolution on a
 * 2x5x4x3 input with 2 output channels, its loss sum(y * r), and the gradients w.r.t. input and filter,
 * compared with a direct JavaScript computation. It catches backends that load but compute wrongly or
 * cannot train (e.g. missing gradient kernels).
 */
import * as tf from '@tensorflow/tfjs-core';
import { EngineError } from './errors.ts';

const N = 2, H = 5, W = 4, CI = 3, CO = 2, F = 3, P = 1;

function det(i: number, salt: number): number {
  return Math.sin(i * 12.9898 + salt * 78.233) * 0.5;
}

export function selfCheck(tolerance = 1e-3): void {
  const xs = Float32Array.from({ length: N * H * W * CI }, (_, i) => det(i, 1));
  const ws = Float32Array.from({ length: F * F * CI * CO }, (_, i) => det(i, 2));
  const rs = Float32Array.from({ length: N * H * W * CO }, (_, i) => det(i, 3));
  // Reference: y[n,y,x,o] = sum w[ky,kx,c,o] x[n,y+ky-1,x+kx-1,c]; dL/dy = r.
  const y = new Float64Array(N * H * W * CO), dx = new Float64Array(xs.length), dw = new Float64Array(ws.length);
  for (let n = 0; n < N; n++)
    for (let oy = 0; oy < H; oy++)
      for (let ox = 0; ox < W; ox++)
        for (let ky = 0; ky < F; ky++)
          for (let kx = 0; kx < F; kx++) {
            const iy = oy + ky - P, ix = ox + kx - P;
            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
            for (let c = 0; c < CI; c++)
              for (let o = 0; o < CO; o++) {
                const xi = ((n * H + iy) * W + ix) * CI + c, wi = ((ky * F + kx) * CI + c) * CO + o;
                const yi = ((n * H + oy) * W + ox) * CO + o;
                y[yi] += ws[wi] * xs[xi];
                dx[xi] += ws[wi] * rs[yi];
                dw[wi] += xs[xi] * rs[yi];
              }
          }
  const got = tf.tidy(() => {
    const x = tf.tensor4d(xs, [N, H, W, CI]), w = tf.tensor4d(ws, [F, F, CI, CO]), r = tf.tensor4d(rs, [N, H, W, CO]);
    const out = tf.conv2d(x, w, 1, 'same');
    const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same'), r)));
    const [gx, gw] = g([x, w]);
    return [out.dataSync(), gx.dataSync(), gw.dataSync()];
  });
  const check = (what: string, a: ArrayLike<number>, b: ArrayLike<number>) => {
    for (let i = 0; i < b.length; i++) {
      if (!(Math.abs(a[i] - b[i]) <= tolerance * (1 + Math.abs(b[i])))) {
        throw new EngineError('SELF_CHECK_FAILED', `self-check failed: ${what}[${i}] = ${a[i]}, expected ${b[i]}`);
      }
    }
  };
  check('conv2d', got[0], y);
  check('d conv2d / d x', got[1], dx);
  check('d conv2d / d w', got[2], dw);
}
