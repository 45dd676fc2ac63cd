import type { SliceDataset } from '../data/index.ts';
import type { UNet } from '../model/index.ts';
import { checkDataset } from '../training/index.ts';
import { predict } from './predict.ts';

export interface DiceSummary {
  /** Dice per class (index = class, background included), pooled over every pixel of the split; NaN when the class is absent from both truth and prediction. */
  readonly perClass: number[];
  /** Mean over foreground classes (1..K-1), NaN entries excluded; NaN if all are NaN. */
  readonly mean: number;
}

/**
 * A quick training-time check: Dice = 2|Y and P| / (|Y| + |P|) per class, pooled over the whole split (not per volume,
 * no spacing). The full metrics (per volume, IoU, HD95, ASSD, MONAI semantics) live in site-agent/metrics.
 */
export function evaluateDice(unet: UNet, data: SliceDataset, batchSize = 8): DiceSummary {
  checkDataset(unet, data, 'evaluateDice');
  const k = unet.config.numClasses;
  const pred = predict(unet, data.images, data.n, data.height, data.width, data.channels, batchSize);
  const inter = new Float64Array(k);
  const predCount = new Float64Array(k);
  const trueCount = new Float64Array(k);
  for (let i = 0; i < pred.length; i++) {
    const p = pred[i];
    const t = data.labels[i];
    predCount[p]++;
    trueCount[t]++;
    if (p === t) inter[p]++;
  }
  const perClass = Array.from({ length: k }, (_, c) => {
    const denom = predCount[c] + trueCount[c];
    return denom === 0 ? Number.NaN : (2 * inter[c]) / denom;
  });
  const fg = perClass.slice(1).filter((d) => !Number.isNaN(d));
  return { perClass, mean: fg.length > 0 ? fg.reduce((a, b) => a + b, 0) / fg.length : Number.NaN };
}
