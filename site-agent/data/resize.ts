/**
 * 2D resampling of single-channel row-major images: bilinear for intensities, nearest for labels.
 * Pixel centres are aligned (half-pixel convention, as `align_corners=False` in PyTorch / tf.image),
 * so that an image and its label map resized with the two functions stay registered.
 */

/** Bilinear resize of an h x w float image to outH x outW. */
export function resizeBilinear(src: ArrayLike<number>, h: number, w: number, outH: number, outW: number): Float32Array {
  const out = new Float32Array(outH * outW);
  if (h === outH && w === outW) {
    for (let i = 0; i < out.length; i++) out[i] = src[i];
    return out;
  }
  const sy = h / outH;
  const sx = w / outW;
  // Precompute the column taps once; they are the same for every row.
  const x0s = new Int32Array(outW);
  const x1s = new Int32Array(outW);
  const fxs = new Float32Array(outW);
  for (let x = 0; x < outW; x++) {
    let fx = (x + 0.5) * sx - 0.5;
    if (fx < 0) fx = 0;
    if (fx > w - 1) fx = w - 1;
    const x0 = Math.floor(fx);
    x0s[x] = x0;
    x1s[x] = Math.min(x0 + 1, w - 1);
    fxs[x] = fx - x0;
  }
  for (let y = 0; y < outH; y++) {
    let fy = (y + 0.5) * sy - 0.5;
    if (fy < 0) fy = 0;
    if (fy > h - 1) fy = h - 1;
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, h - 1);
    const ty = fy - y0;
    const r0 = y0 * w;
    const r1 = y1 * w;
    const o = y * outW;
    for (let x = 0; x < outW; x++) {
      const tx = fxs[x];
      const a = src[r0 + x0s[x]] + (src[r0 + x1s[x]] - src[r0 + x0s[x]]) * tx;
      const b = src[r1 + x0s[x]] + (src[r1 + x1s[x]] - src[r1 + x0s[x]]) * tx;
      out[o + x] = a + (b - a) * ty;
    }
  }
  return out;
}

/** Nearest-neighbour resize of an h x w label map to outH x outW (never invents label values). */
export function resizeNearest(src: ArrayLike<number>, h: number, w: number, outH: number, outW: number): Uint8Array {
  const out = new Uint8Array(outH * outW);
  for (let y = 0; y < outH; y++) {
    const sy = Math.min(h - 1, Math.floor((y + 0.5) * (h / outH)));
    for (let x = 0; x < outW; x++) {
      const sx = Math.min(w - 1, Math.floor((x + 0.5) * (w / outW)));
      out[y * outW + x] = src[sy * w + sx];
    }
  }
  return out;
}
