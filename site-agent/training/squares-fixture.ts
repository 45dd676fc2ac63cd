import type { SliceDataset } from '../data/index.ts';
import { Rng } from '../../protocol/common/index.ts';

/**
 * A tiny synthetic segmentation problem for tests and smoke benchmarks: each slice is Gaussian noise (sd 0.2)
 * with one bright square (intensity +1, side size/4..size/2) labelled 1; background 0. Single channel.
 */
export function makeSquaresDataset(n: number, size: number, seed: number): SliceDataset {
  const rng = new Rng(seed);
  const px = size * size;
  const images = new Float32Array(n * px);
  const labels = new Uint8Array(n * px);
  for (let s = 0; s < n; s++) {
    const side = Math.max(2, Math.floor(size / 4) + rng.int(Math.floor(size / 4) + 1));
    const r0 = rng.int(size - side + 1);
    const c0 = rng.int(size - side + 1);
    for (let r = 0; r < size; r++) {
      for (let c = 0; c < size; c++) {
        const inside = r >= r0 && r < r0 + side && c >= c0 && c < c0 + side;
        images[s * px + r * size + c] = (inside ? 1 : 0) + 0.2 * rng.normal();
        labels[s * px + r * size + c] = inside ? 1 : 0;
      }
    }
  }
  return {
    n,
    height: size,
    width: size,
    channels: 1,
    images,
    labels,
    numClasses: 2,
    spacing: [1, 1],
    caseIds: Array.from({ length: n }, (_, i) => `square-${i}`),
  };
}
