import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import type { PrivacyStatus } from '../strategies/index.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CLASS_HISTOGRAM_REQUEST, classHistogramToVectors } from '../../protocol/class-histogram-vectors.ts';
import type { WeightSet } from '../../protocol/named-tensor.ts';
import type { SourceStats } from '../../protocol/contracts/index.ts';
import { SOURCE_STATS_REQUEST, sourceStatsToVectors } from '../../protocol/source-stats-vectors.ts';
import { decodeWeightSet } from '../../protocol/tensor-codec.ts';
import { writeRunArtifacts, type ArtifactSource } from './run-artifacts.ts';
import { StatisticsRoundError, type StatisticsRequest } from '../workflows/index.ts';

// A U-Net head [1, 1, latent 2, classes 2] is all the source-stats package needs from the model.
const WEIGHTS: WeightSet = [{ name: 'head.w', shape: [1, 1, 2, 2], data: Float32Array.of(1, 2, 3, 4) }];

function siteStats(count: number): SourceStats {
  const m = { count, sum: [count, 0], sumOuter: [count, 0, 0, count] };
  return {
    kind: 'fedsfda-source-stats', version: 1, numClasses: 2, latentDim: 2, confidence: 0.97, numSites: 1,
    bn: { 'enc1.bn1': { count, sum: [0], sumSq: [count] } },
    classes: [{ labelCount: count, confident: m, labelled: m }, { labelCount: count, confident: m, labelled: m }],
  };
}

/** Sums over three fake sites, as a statistics round would return them. */
function fakeSource(requests: StatisticsRequest[], fail?: Error): ArtifactSource {
  const sum = (vs: Record<string, Float32Array>[]): Record<string, Float32Array> =>
    Object.fromEntries(Object.keys(vs[0]).map((k) => [k, Float32Array.from(vs[0][k], (_, i) => vs.reduce((a, v) => a + v[k][i], 0))]));
  return {
    weights: () => WEIGHTS,
    runStatisticsRound: async (r) => {
      requests.push(r);
      if (fail) throw fail;
      const scale = Number(r.config?.scale);
      const included = ['a', 'b', 'c'];
      if (r.name === SOURCE_STATS_REQUEST) return { sums: sum([10, 20, 30].map((n) => sourceStatsToVectors(siteStats(n), scale))), included };
      if (r.name === CLASS_HISTOGRAM_REQUEST) return { sums: sum([[90, 10], [50, 50], [80, 20]].map((h) => classHistogramToVectors(h, scale))), included };
      throw new Error(`unexpected ${r.name}`);
    },
  };
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-artifacts-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('writeRunArtifacts', () => {
  it('without statistics writes only the final model, runs no statistics round', async () => {
    const requests: StatisticsRequest[] = [];
    const r = await writeRunArtifacts(fakeSource(requests), dir);
    expect(r).toEqual({ finalWeights: 'final-weights.fsws', sourceStats: null, classHistogram: null, failures: [], privacy: null, privacyLedger: null });
    expect(requests).toEqual([]);
    expect(await readdir(dir)).toEqual(['final-weights.fsws']);
    expect(decodeWeightSet(new Uint8Array(await readFile(join(dir, 'final-weights.fsws'))))).toEqual(WEIGHTS);
  });

  it('writes privacy.json when the run is differentially private', async () => {
    const privacy = { mode: 'central', epsilon: 2.5, delta: 1e-5 } as unknown as PrivacyStatus;
    const r = await writeRunArtifacts({ ...fakeSource([]), status: () => ({ privacy }) }, dir);
    expect(r.privacy).toBe('privacy.json');
    expect(JSON.parse(await readFile(join(dir, 'privacy.json'), 'utf8'))).toEqual(privacy);
  });

  it('pools source statistics (ranges sized from the data) and the non-IID report (clip 1) with the public scale', async () => {
    const requests: StatisticsRequest[] = [];
    const r = await writeRunArtifacts(fakeSource(requests), dir, { pixelBound: 1000 });
    expect(requests.map((q) => [q.name, q.clip, q.scaled, q.config?.scale])).toEqual([
      ['source-stats', undefined, true, 0.001],
      ['class-histogram', 1, undefined, 0.001],
    ]);
    expect(r.failures).toEqual([]);
    const stats = JSON.parse(await readFile(join(dir, 'source-stats.json'), 'utf8')) as SourceStats;
    expect(stats).toMatchObject({ numSites: 3, numClasses: 2, latentDim: 2 });
    expect(stats.classes[0].labelCount).toBe(60);
    expect(stats.bn['enc1.bn1'].count).toBe(60);
    const hist = JSON.parse(await readFile(join(dir, 'class-histogram.json'), 'utf8')) as { pooledPixels: number[]; sites: string[]; meanSiteFraction: number[] };
    expect(hist.pooledPixels).toEqual([220, 80]);
    expect(hist.sites).toEqual(['a', 'b', 'c']);
    expect(hist.meanSiteFraction[1]).toBeCloseTo(80 / 300, 6);
  });

  it('reports a failed statistics round with each left-out site and its reason, and still writes the model', async () => {
    const err = new StatisticsRoundError('not-enough-sites', 'only 2 site(s) agree on a statistics layout', [
      { siteId: 'c', reason: '41000 pixels exceed the public bound 1/scale = 1000' },
    ]);
    const r = await writeRunArtifacts(fakeSource([], err), dir, { pixelBound: 1000 });
    expect(r.sourceStats).toBeNull();
    expect(r.failures.map((f) => f.artifact)).toEqual(['source-stats', 'class-histogram']);
    expect(r.failures[0].reason).toMatch(/only 2 site\(s\).*c: 41000 pixels exceed the public bound/);
    expect(await readdir(dir)).toEqual(['final-weights.fsws']);
  });

  it("a restart on a folder the killed coordinator completed keeps it and removes the killed writer's temp file", async () => {
    // Arrange: a complete folder, then the temp file a coordinator killed mid-write leaves (its pid is gone).
    const history = [{ round: 1 }] as unknown as ReturnType<NonNullable<ArtifactSource['history']>>;
    const requests: StatisticsRequest[] = [];
    await writeRunArtifacts({ ...fakeSource(requests), history: () => history }, dir);
    const manifest = await readFile(join(dir, 'run.json'), 'utf8');
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    await writeFile(join(dir, `.tmp-history.json-${dead}-0123abcd`), '[{"rou');
    // Act: the restarted coordinator writes its artifacts for the same round.
    await writeRunArtifacts({ ...fakeSource(requests), history: () => history }, dir);
    // Assert: nothing redone, nothing stray.
    expect(await readFile(join(dir, 'run.json'), 'utf8')).toBe(manifest);
    expect((await readdir(dir)).sort()).toEqual(['final-weights.fsws', 'history.json', 'run.json']);
  });

  it('refuses a statistics block without a positive pixel bound before writing anything', async () => {
    await expect(writeRunArtifacts(fakeSource([]), dir, { pixelBound: 0 })).rejects.toThrow(/pixelBound/);
    expect(await readdir(dir)).toEqual([]);
  });
});
