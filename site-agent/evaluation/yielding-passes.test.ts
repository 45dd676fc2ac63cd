/**
 * The site agent's evaluation and statistics passes give the event loop a turn between batches (so its socket.io
 * heartbeat is answered during a long pass) and compute exactly what the synchronous passes compute.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computeSourceStats, computeSourceStatsAsync, dpClassHistogramVectors, dpClassHistogramVectorsAsync, dpSourceStatsVectors, dpSourceStatsVectorsAsync } from '../adapt/index.ts';
import type { SliceDataset } from '../data/index.ts';
import { createUNet, type UNet } from '../model/index.ts';
import { makeSquaresDataset } from '../training/index.ts';
import { evaluateVolumes, evaluateVolumesAsync, predict, predictAsync } from './index.ts';

// 21 slices in 3 cases of 7, batches of 8: two full batches and a partial one.
const SQUARES = makeSquaresDataset(21, 16, 5);
const VOLUMES: SliceDataset = { ...SQUARES, caseIds: SQUARES.caseIds.map((_, i) => `case-${Math.floor(i / 7)}`), sliceThickness: 2 };
let unet: UNet;

beforeAll(async () => {
  await tf.setBackend('cpu');
  unet = createUNet({ inChannels: 1, numClasses: 2, baseChannels: 4, depth: 2 }, 3);
});
afterAll(() => unet.dispose());

/**
 * Runs `pass` with a setImmediate callback queued just before it; says whether the callback ran before the pass ended,
 * that is whether the pass gave the event loop a turn. Deterministic: a 0 ms timer only fires once a millisecond has
 * passed, so a pass that yields but ends within that millisecond (the class-histogram pass on an idle machine) would
 * look as if it never yielded; the check-phase queue is FIFO, so the callback queued first runs at the pass's first yield.
 */
async function eventLoopTurnDuring(pass: () => unknown): Promise<boolean> {
  let ended = false;
  let ranDuring = false;
  const immediate = setImmediate(() => (ranDuring = !ended));
  try {
    await pass();
    ended = true;
    return ranDuring;
  } finally {
    clearImmediate(immediate);
  }
}

describe('evaluation passes that yield to the event loop', () => {
  it('predictAsync gives the same labels as predict (partial last batch included)', async () => {
    const sync = predict(unet, SQUARES.images, SQUARES.n, 16, 16, 1, 8);
    const async = await predictAsync(unet, SQUARES.images, SQUARES.n, 16, 16, 1, 8);
    expect(Buffer.compare(Buffer.from(async), Buffer.from(sync))).toBe(0);
  });

  it('evaluateVolumesAsync gives the same evaluation as evaluateVolumes, in 3D volumes and in 2D slices', async () => {
    expect(await evaluateVolumesAsync(unet, VOLUMES)).toEqual(evaluateVolumes(unet, VOLUMES));
    expect(await evaluateVolumesAsync(unet, SQUARES)).toEqual(evaluateVolumes(unet, SQUARES));
  });

  it('gives the event loop a turn during a long evaluation; the synchronous pass does not', async () => {
    expect(await eventLoopTurnDuring(() => evaluateVolumes(unet, VOLUMES))).toBe(false);
    expect(await eventLoopTurnDuring(() => evaluateVolumesAsync(unet, VOLUMES))).toBe(true);
  });
});

describe('statistics passes that yield to the event loop', () => {
  it('computeSourceStatsAsync gives the same package as computeSourceStats', async () => {
    expect(await computeSourceStatsAsync(unet, VOLUMES, { confidence: 0.6 })).toEqual(computeSourceStats(unet, VOLUMES, { confidence: 0.6 }));
  });

  it('dpSourceStatsVectorsAsync gives the same vectors as dpSourceStatsVectors', async () => {
    const dp = { unit: 'case' as const, maxUnits: 10, featureClip: 4, activationClip: 4, unitPixels: 7 * 256, delta: 1e-5 };
    expect(await dpSourceStatsVectorsAsync(unet, VOLUMES, dp, 0.6)).toEqual(dpSourceStatsVectors(unet, VOLUMES, dp, 0.6));
  });

  it('dpClassHistogramVectorsAsync gives the same vectors as dpClassHistogramVectors and gives the event loop a turn', async () => {
    const dp = { unit: 'slice' as const, maxUnits: 64, featureClip: 4, activationClip: 4, unitPixels: 256, delta: 1e-5 };
    expect(await dpClassHistogramVectorsAsync(VOLUMES, dp)).toEqual(dpClassHistogramVectors(VOLUMES, dp));
    expect(await eventLoopTurnDuring(() => dpClassHistogramVectors(VOLUMES, dp))).toBe(false);
    expect(await eventLoopTurnDuring(() => dpClassHistogramVectorsAsync(VOLUMES, dp))).toBe(true);
  });

  it('gives the event loop a turn during the source-statistics pass; the synchronous pass does not', async () => {
    expect(await eventLoopTurnDuring(() => computeSourceStats(unet, VOLUMES))).toBe(false);
    expect(await eventLoopTurnDuring(() => computeSourceStatsAsync(unet, VOLUMES))).toBe(true);
  });
});
