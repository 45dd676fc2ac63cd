/**
 * The assertions every reliability test makes about a toy federation's finished run folder (test/support's
 * least-squares sites: tensors head.w, linear.w, linear.b; three enrolled sites): run.json says every round
 * aggregated with no failure, both statistics rounds counted all three sites, history.json holds each round once,
 * and the final weights decode.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { runManifestSchema, type RunManifest } from '../../coordinator/index.ts';
import { decodeWeightSet } from '../../protocol/index.ts';

export async function expectCompleteToyRun(out: string, rounds: number): Promise<RunManifest> {
  const manifest = runManifestSchema.parse(JSON.parse(await readFile(join(out, 'run.json'), 'utf8')));
  expect(manifest.outcome).toMatchObject({ ok: true, rounds, aggregatedRounds: rounds });
  expect(manifest.report.failures).toEqual([]);
  expect(manifest.report.sourceStats?.sites).toEqual(['site-1', 'site-2', 'site-3']);
  expect(manifest.report.classHistogram?.sites).toEqual(['site-1', 'site-2', 'site-3']);
  const history = JSON.parse(await readFile(join(out, 'history.json'), 'utf8')) as { round: number }[];
  expect(history.map((r) => r.round)).toEqual(Array.from({ length: rounds }, (_, i) => i + 1));
  const weights = decodeWeightSet(new Uint8Array(await readFile(join(out, 'final-weights.fsws'))));
  expect(weights.map((t) => t.name).sort()).toEqual(['head.w', 'linear.b', 'linear.w']);
  return manifest;
}
