import { describe, expect, it } from 'vitest';
import {
  batchNormTensorName,
  headDimensions,
  isBatchNormTensor,
  readDice,
  roundRecordSchema,
  segmentationMetricRecord,
  SourceStatsSchema,
  tensorRole,
} from './index.ts';

describe('metric names', () => {
  const scores = {
    dice: 0.5,
    iou: 0.4,
    hd95: Infinity,
    assd: 2,
    perClass: [
      { dice: 0.7, hd95: 3 },
      { dice: NaN, hd95: NaN },
      { dice: 0.3, hd95: Infinity },
    ],
    infiniteDistances: 2,
    volumes: 4,
  };

  it('a record holds finite values only, and reads back as what was measured', () => {
    const record = segmentationMetricRecord(scores);
    expect(record).toEqual({ dice: 0.5, iou: 0.4, assd: 2, 'dice.class1': 0.7, 'hd95.class1': 3, 'dice.class3': 0.3, infiniteDistances: 2, volumes: 4 });
    expect(JSON.parse(JSON.stringify(record))).toEqual(record);
    expect(readDice(record, 4)).toEqual({ mean: 0.5, perClass: [0.7, null, 0.3] });
    expect(readDice(null, 3)).toEqual({ mean: null, perClass: [null, null] });
  });
});

describe('tensor names', () => {
  it('tells every role of the U-Net\'s names apart from the name alone', () => {
    expect(tensorRole('enc1.conv1.w')).toBe('conv');
    expect(tensorRole('up2.b')).toBe('conv');
    expect(tensorRole(batchNormTensorName('dec1.bn2', 'gamma'))).toBe('bn-affine');
    expect(tensorRole('bottleneck.bn1.beta')).toBe('bn-affine');
    expect(tensorRole('enc2.bn1.mean')).toBe('bn-stat');
    expect(tensorRole('enc2.bn1.var')).toBe('bn-stat');
    expect(tensorRole('head.w')).toBe('head');
    expect(['enc1.bn1.gamma', 'dec.bn.mean', 'x.groupnorm.beta'].every(isBatchNormTensor)).toBe(true);
    expect(['enc1.conv1.w', 'bneck.conv.w', 'head.b', 'up1.w'].some(isBatchNormTensor)).toBe(false);
  });

  it('reads latent channels and classes off the head, and refuses a model without one', () => {
    expect(headDimensions([{ name: 'x', shape: [3] }, { name: 'head.w', shape: [1, 1, 8, 4] }])).toEqual({ latentDim: 8, numClasses: 4 });
    expect(() => headDimensions([{ name: 'head.w', shape: [8, 4] }])).toThrow(/head\.w of rank 4/);
  });
});

describe('schemas', () => {
  it('the round record schema accepts a record and refuses an unknown failure code', () => {
    const record = {
      round: 1,
      meanTrainLoss: 0.5,
      aggregated: true,
      sites: [{ siteId: 'a', numExamples: 3, trainLoss: 0.5, fitMetrics: {}, evalNumExamples: 2, evalMetrics: { dice: 0.1 } }],
      failures: [{ siteId: 'b', stage: 'fit', code: 'timeout', reason: 'no reply in 5 s' }],
      evalMetrics: null,
      fitMetrics: {},
      startedAt: new Date(0).toISOString(),
      durationMs: 12,
    };
    expect(roundRecordSchema.parse(record)).toEqual(record);
    expect(roundRecordSchema.safeParse({ ...record, failures: [{ ...record.failures[0], code: 'bored' }] }).success).toBe(false);
  });

  it('the source statistics schema checks moment sizes against latentDim', () => {
    const m = (d: number) => ({ count: 1, sum: new Array(d).fill(0), sumOuter: new Array(d * d).fill(0) });
    const stats = { kind: 'fedsfda-source-stats', version: 1, numClasses: 2, latentDim: 2, confidence: 0.9, numSites: 1, bn: {}, classes: [0, 1].map(() => ({ labelCount: 1, confident: m(2), labelled: m(2) })) };
    expect(SourceStatsSchema.safeParse(stats).success).toBe(true);
    expect(SourceStatsSchema.safeParse({ ...stats, latentDim: 3 }).success).toBe(false);
  });
});
