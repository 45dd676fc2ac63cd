import { appendFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { WeightSet } from '../../protocol/named-tensor.ts';
import { encodeWeightSet } from '../../protocol/tensor-codec.ts';
import type { RoundRecord } from '../rounds/index.ts';
import { CheckpointStore } from './checkpoint-store.ts';

const weights = (v: number): WeightSet => [{ name: 'w', shape: [2], data: Float32Array.of(v, v) }];
const record = (round: number): RoundRecord => ({
  round, meanTrainLoss: 1 / round, aggregated: true, sites: [], failures: [], evalMetrics: null, fitMetrics: {}, startedAt: '2026-12-01T00:00:00.000Z', durationMs: 5,
});

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-ckpt-store-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function saveRounds(store: CheckpointStore, from: number, to: number): Promise<void> {
  for (let r = from; r <= to; r++) await store.save({ round: r, weights: weights(r), record: record(r), strategy: 'fedavg', strategyState: null });
}

describe('CheckpointStore', () => {
  it('appends one history record per round instead of rewriting the whole history', async () => {
    const store = new CheckpointStore(dir);
    await saveRounds(store, 1, 50);
    const jsonl = (await readFile(join(dir, 'history.jsonl'), 'utf8')).trim().split('\n');
    expect(jsonl).toHaveLength(50);
    const sizeAt50 = (await stat(join(dir, 'checkpoint.json'))).size;
    await saveRounds(store, 51, 100);
    // checkpoint.json does not grow with the history; history.jsonl grows by one line per round.
    expect((await stat(join(dir, 'checkpoint.json'))).size).toBeLessThanOrEqual(sizeAt50 + 8);
    const loaded = await new CheckpointStore(dir).load();
    expect(loaded?.round).toBe(100);
    expect(loaded?.history.map((r) => r.round)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(Array.from(loaded!.weights[0].data)).toEqual([100, 100]);
  });

  it('ignores a torn or orphaned tail (a kill between the append and checkpoint.json) and cuts it off on the next save', async () => {
    await saveRounds(new CheckpointStore(dir), 1, 3);
    await appendFile(join(dir, 'history.jsonl'), `${JSON.stringify(record(4))}\n{"round": 5, "mean`);
    const restarted = new CheckpointStore(dir);
    expect((await restarted.load())?.history.map((r) => r.round)).toEqual([1, 2, 3]);
    await saveRounds(restarted, 4, 4);
    const again = await new CheckpointStore(dir).load();
    expect(again?.history.map((r) => r.round)).toEqual([1, 2, 3, 4]);
    expect((await readFile(join(dir, 'history.jsonl'), 'utf8')).trim().split('\n')).toHaveLength(4);
  });

  it('reads a v1 checkpoint (history inside checkpoint.json) and migrates it on the next save', async () => {
    await writeFile(join(dir, 'weights-r2.fsws'), encodeWeightSet(weights(2)));
    await writeFile(
      join(dir, 'checkpoint.json'),
      JSON.stringify({ v: 1, round: 2, strategy: 'fedavg', weightsFile: 'weights-r2.fsws', stateFile: null, history: [record(1), record(2)], savedAt: 'x' }),
    );
    const store = new CheckpointStore(dir);
    expect((await store.load())?.history.map((r) => r.round)).toEqual([1, 2]);
    await saveRounds(store, 3, 3);
    const cp = JSON.parse(await readFile(join(dir, 'checkpoint.json'), 'utf8')) as { v: number; historyRecords: number };
    expect(cp).toMatchObject({ v: 2, historyRecords: 3 });
    expect((await new CheckpointStore(dir).load())?.history.map((r) => r.round)).toEqual([1, 2, 3]);
  });

  it('refuses a checkpoint whose history is shorter than it claims', async () => {
    await saveRounds(new CheckpointStore(dir), 1, 2);
    await writeFile(join(dir, 'history.jsonl'), `${JSON.stringify(record(1))}\n`);
    await expect(new CheckpointStore(dir).load()).rejects.toMatchObject({ code: 'corrupt' });
  });
});
