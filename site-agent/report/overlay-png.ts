/**
 * Segmentation overlays a radiologist can check at a glance: one PNG per slice with the image, the ground truth
 * (when known) and the prediction side by side, labels drawn as translucent class colours over the grey image.
 * Pure JS (pngjs); nearest-neighbour upscaling so that small slices stay readable.
 */
import { PNG } from 'pngjs';

/** Class colours (class 1 first), distinguishable for the common colour-vision deficiencies (Okabe & Ito 2008). */
export const CLASS_COLOURS: readonly (readonly [number, number, number])[] = [
  [230, 159, 0],
  [86, 180, 233],
  [0, 158, 115],
  [240, 228, 66],
  [0, 114, 178],
  [213, 94, 0],
  [204, 121, 167],
];

export interface OverlaySlice {
  /** Row-major intensities of one slice (any range; windowed to its 1st-99th percentile). */
  readonly image: ArrayLike<number>;
  readonly height: number;
  readonly width: number;
  /** Ground-truth labels, or null when unknown (an unlabeled target). */
  readonly truth: ArrayLike<number> | null;
  readonly prediction: ArrayLike<number>;
}

function windowed(image: ArrayLike<number>): (v: number) => number {
  const sorted = Float64Array.from(image).filter((v) => Number.isFinite(v)).sort();
  if (sorted.length === 0) return () => 0;
  const lo = sorted[Math.floor(0.01 * (sorted.length - 1))];
  const hi = sorted[Math.ceil(0.99 * (sorted.length - 1))];
  const span = hi - lo > 1e-12 ? hi - lo : 1;
  return (v) => Math.max(0, Math.min(255, Math.round(((v - lo) / span) * 255)));
}

const ALPHA = 0.5;
const GAP = 4;

/** The PNG bytes: panels [image | image + truth | image + prediction] (the truth panel only when known). */
export function overlayPng(s: OverlaySlice, minPanelPx = 160): Buffer {
  const n = s.height * s.width;
  if (s.image.length !== n || s.prediction.length !== n || (s.truth && s.truth.length !== n)) {
    throw new RangeError(`overlay: image, truth and prediction must each have ${s.height}x${s.width} values`);
  }
  const scale = Math.max(1, Math.ceil(minPanelPx / Math.max(s.height, s.width)));
  const panels: (ArrayLike<number> | null)[] = s.truth ? [null, s.truth, s.prediction] : [null, s.prediction];
  const pw = s.width * scale;
  const ph = s.height * scale;
  const png = new PNG({ width: panels.length * pw + (panels.length - 1) * GAP, height: ph });
  png.data.fill(255);
  const grey = windowed(s.image);
  panels.forEach((labels, p) => {
    for (let y = 0; y < ph; y++) {
      for (let x = 0; x < pw; x++) {
        const i = Math.floor(y / scale) * s.width + Math.floor(x / scale);
        const g = grey(s.image[i]);
        let rgb: [number, number, number] = [g, g, g];
        const c = labels ? labels[i] : 0;
        if (c > 0) {
          const col = CLASS_COLOURS[(c - 1) % CLASS_COLOURS.length];
          rgb = [0, 1, 2].map((k) => Math.round((1 - ALPHA) * g + ALPHA * col[k])) as [number, number, number];
        }
        const o = (y * png.width + p * (pw + GAP) + x) * 4;
        png.data[o] = rgb[0];
        png.data[o + 1] = rgb[1];
        png.data[o + 2] = rgb[2];
        png.data[o + 3] = 255;
      }
    }
  });
  return PNG.sync.write(png);
}
