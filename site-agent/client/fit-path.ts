/**
 * The site's one fit path. Every request to train — a plain `fitIns`, or the setup of a secure-aggregation round —
 * goes through `trainOnce`: the model (received or cached), then the trainer wrapped in the site's fit mods (update
 * transforms such as clipping and noise for differential privacy, Flower's client mods), with the result cached by
 * (round, model id) so a request re-issued after a reconnect, or the same round re-run by a restarted coordinator,
 * is answered without training again — including while the first run is still going.
 */
import nacl from 'tweetnacl';
import { encodeWeightSet, toHex, type WeightSet } from '../../protocol/index.ts';
import type { FitConfig, FitOutput, LocalTrainer } from './local-trainer.ts';

/** Train from a global model: the trainer itself, or a mod wrapped around it. */
export type FitHandler = (global: WeightSet, config: FitConfig) => Promise<FitOutput>;

/**
 * A wrapper around the fit path (Flower's client mod): receives the next handler and returns one that may change the
 * config on the way in or the update on the way out.
 * @example const clip: FitMod = (next) => async (g, c) => clipUpdate(g, await next(g, c), 1.0);
 */
export type FitMod = (next: FitHandler) => FitHandler;

/** The trainer wrapped in `mods` (the first mod is the outermost). */
export function composeFit(trainer: LocalTrainer, mods: readonly FitMod[] = []): FitHandler {
  const base: FitHandler = (g, c) => trainer.fit(g, c);
  return mods.reduceRight<FitHandler>((next, mod) => mod(next), base);
}

/** Keep only finite numbers (JSON cannot carry NaN/Infinity, and the schema would refuse the whole reply). */
export function finiteMetrics(m: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(m ?? {}).slice(0, 64)) if (typeof v === 'number' && Number.isFinite(v)) out[k.slice(0, 64)] = v;
  return out;
}

/** A finished local training run. */
export interface TrainedFit {
  /** The global model it started from (a DP contribution clips the update relative to it). */
  readonly global: WeightSet;
  /** Shapes of the global model (a secure contribution packs tensors by these). */
  readonly shapes: Map<string, number[]>;
  readonly output: FitOutput;
  /** Filled the first time the update is uploaded in the clear (plain fit), then reused by re-sends. */
  encoded?: { updateId: string; bytes: Uint8Array };
}

export interface FitCacheEntry {
  readonly round: number;
  readonly modelId: string;
  readonly result: Promise<TrainedFit>;
}

/** What `trainOnce` needs from the session: the composed fit handler and the cache that outlives connections. */
export interface FitPathContext {
  readonly siteId: string;
  readonly fit: FitHandler;
  lastFit: FitCacheEntry | null;
}

/**
 * Train on `global` for `round` (or reuse the run already started or finished for the same round and model).
 * A failed run is not cached: a re-issued request trains again. `reused` says whether this call trained.
 */
export async function trainOnce(ctx: FitPathContext, round: number, modelId: string, global: WeightSet, config: FitConfig): Promise<{ trained: TrainedFit; reused: boolean }> {
  const reused = ctx.lastFit !== null && ctx.lastFit.round === round && ctx.lastFit.modelId === modelId;
  if (!reused) {
    const shapes = new Map(global.map((t) => [t.name, [...t.shape]]));
    const run = async (): Promise<TrainedFit> => {
      const output = await ctx.fit(global, config);
      if (!Number.isInteger(output.numExamples) || output.numExamples < 0) throw new Error(`trainer returned numExamples ${output.numExamples}`);
      return { global, shapes, output: { ...output, metrics: finiteMetrics(output.metrics) } };
    };
    ctx.lastFit = { round, modelId, result: run() };
  }
  const entry = ctx.lastFit as FitCacheEntry;
  try {
    return { trained: await entry.result, reused };
  } catch (e) {
    if (ctx.lastFit === entry) ctx.lastFit = null;
    throw e;
  }
}

/** The encoded update of a trained fit, made once (the same updateId lets an interrupted upload resume). */
export function encodedUpdate(ctx: { siteId: string }, round: number, trained: TrainedFit): { updateId: string; bytes: Uint8Array } {
  trained.encoded ??= { updateId: `update-${ctx.siteId}-r${round}-${toHex(nacl.randomBytes(6))}`, bytes: encodeWeightSet(trained.output.weights) };
  return trained.encoded;
}
