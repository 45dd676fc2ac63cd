/**
 * The names of the metrics a site reports (the wire's `metrics: Record<string, number>`), built and read here only:
 * the site's trainer writes a record with `segmentationMetricRecord`, the coordinator and the simulation read it back
 * with `readDice` / `metricValue`. JSON has no NaN or Infinity, so a record holds finite numbers only; an absent
 * key means "not defined" (e.g. Dice of a class absent from every validation volume).
 */

/** Fit metrics every site reports after local training. */
export const FIT_METRIC = { trainLoss: 'trainLoss', steps: 'steps' } as const;

/** Evaluation metrics of a model on a site's validation volumes (means over foreground classes and volumes). */
export const EVAL_METRIC = {
  dice: 'dice',
  iou: 'iou',
  hd95: 'hd95',
  assd: 'assd',
  /** Count of (volume, class) distances that were infinite (empty prediction, non-empty truth). */
  infiniteDistances: 'infiniteDistances',
  /** Number of validation volumes scored. */
  volumes: 'volumes',
} as const;

/** The metrics reported per foreground class, as `<metric>.class<c>` (c = 1 is the first foreground class). */
export type PerClassMetric = 'dice' | 'hd95';

export function perClassMetric(metric: PerClassMetric, cls: number): string {
  if (!Number.isInteger(cls) || cls < 1) throw new RangeError(`per-class metrics are for foreground classes >= 1, got ${cls}`);
  return `${metric}.class${cls}`;
}

/** What a site's evaluation measured (NaN or Infinity where undefined: they are left out of the record). */
export interface SegmentationScores {
  readonly dice: number;
  readonly iou: number;
  readonly hd95: number;
  readonly assd: number;
  /** Index i = foreground class i + 1. */
  readonly perClass: readonly { readonly dice: number; readonly hd95: number }[];
  readonly infiniteDistances: number;
  readonly volumes: number;
}

/** The wire record of an evaluation: finite values only. */
export function segmentationMetricRecord(s: SegmentationScores): Record<string, number> {
  const out: Record<string, number> = {};
  const put = (k: string, v: number): void => {
    if (Number.isFinite(v)) out[k] = v;
  };
  put(EVAL_METRIC.dice, s.dice);
  put(EVAL_METRIC.iou, s.iou);
  put(EVAL_METRIC.hd95, s.hd95);
  put(EVAL_METRIC.assd, s.assd);
  s.perClass.forEach((m, i) => {
    put(perClassMetric('dice', i + 1), m.dice);
    put(perClassMetric('hd95', i + 1), m.hd95);
  });
  out[EVAL_METRIC.infiniteDistances] = s.infiniteDistances;
  out[EVAL_METRIC.volumes] = s.volumes;
  return out;
}

/** A metric's value, or null when absent or not finite. */
export function metricValue(record: Readonly<Record<string, number>> | null | undefined, name: string): number | null {
  const v = record?.[name];
  return v === undefined || !Number.isFinite(v) ? null : v;
}

export interface DiceReading {
  /** Mean over foreground classes (null when not reported). */
  readonly mean: number | null;
  /** Index i = foreground class i + 1. */
  readonly perClass: (number | null)[];
}

/** Dice, overall and per foreground class, of a model with `numClasses` classes (background included). */
export function readDice(record: Readonly<Record<string, number>> | null | undefined, numClasses: number): DiceReading {
  const perClass: (number | null)[] = [];
  for (let c = 1; c < numClasses; c++) perClass.push(metricValue(record, perClassMetric('dice', c)));
  return { mean: metricValue(record, EVAL_METRIC.dice), perClass };
}
