/**
 * Federated statistics through the same masked-sum path as model updates: every connected site computes a named
 * set of vectors on the current global model (`LocalTrainer.statistics`), reports only their layout (names and
 * lengths), and the vectors themselves are summed by SecAgg+. The coordinator learns the sum and who is in it —
 * e.g. example counts, BN statistics, or per-class latent sufficient statistics (count, sum, sum of outer products)
 * for the pooled source GMM.
 */
import nacl from 'tweetnacl';
import { toBase64, toHex } from '../protocol/bytes.ts';
import type { Enrollment } from '../protocol/enrollment.ts';
import type { Logger } from '../protocol/common/index.ts';
import { makeSecAggConfig } from '../protocol/secagg/config.ts';
import { packLayout, unpackVectors, type PackLayout } from '../protocol/secagg/pack.ts';
import { driveSecAgg, type DriveFailure, type SecAggTestHooks } from './secagg-driver.ts';
import { quantFor, type SecureAggregationOptions } from './secure-fit.ts';
import type { SiteRegistry } from './site-registry.ts';

export interface StatisticsRequest {
  /** What to compute, e.g. `source-gmm`, `bn-stats`, `class-histogram` (the trainer decides what names mean). */
  name: string;
  config?: Record<string, number | string | boolean>;
  /** Clipping range of the values (default: the coordinator's secureAggregation.clip). Sites refuse values outside it. */
  clip?: number;
  scaleBits?: number;
  threshold?: number;
}

export interface StatisticsResult {
  /** Element-wise sums over `included` sites, by name. */
  sums: Record<string, Float32Array>;
  included: string[];
}

export type StatisticsErrorCode = 'bad-request' | 'not-enough-sites' | 'layout-mismatch' | 'aborted';

export class StatisticsRoundError extends Error {
  override readonly name = 'StatisticsRoundError';
  constructor(
    readonly code: StatisticsErrorCode,
    reason: string,
    /** Per-site reasons for not being in the sum. */
    readonly failures: readonly { siteId: string; reason: string }[] = [],
  ) {
    super(`${code}: ${reason}`);
  }
}

export interface StatisticsDeps {
  registry: SiteRegistry;
  enrollment: Enrollment;
  logger: Logger;
  stageMs: number;
  signal: AbortSignal;
  /** The current round number and encoded global model (statistics are computed on it). */
  model(): { round: number; id: string; bytes: Uint8Array };
  secure: SecureAggregationOptions | undefined;
  hooks?: SecAggTestHooks;
}

function layoutKey(entries: readonly { name: string; length: number }[]): string {
  return JSON.stringify([...entries].sort((a, b) => (a.name < b.name ? -1 : 1)).map((e) => [e.name, e.length]));
}

export async function runStatisticsRound(deps: StatisticsDeps, request: StatisticsRequest): Promise<StatisticsResult> {
  if (typeof request?.name !== 'string' || !/^[A-Za-z0-9._:/-]{1,128}$/.test(request.name)) {
    throw new StatisticsRoundError('bad-request', 'statistics name must be 1-128 characters of [A-Za-z0-9._:/-]');
  }
  const clip = request.clip ?? deps.secure?.clip;
  if (clip === undefined) throw new StatisticsRoundError('bad-request', 'no clip range: pass request.clip or configure secureAggregation');
  const siteIds = deps.registry.ids();
  if (siteIds.length < 3) throw new StatisticsRoundError('not-enough-sites', `secure statistics need at least 3 connected sites, have ${siteIds.length}`);
  const quantOpts: SecureAggregationOptions = {
    clip,
    maxExamples: 1,
    ...(request.scaleBits !== undefined ? { scaleBits: request.scaleBits } : {}),
  };
  let quant;
  try {
    quant = quantFor(quantOpts, siteIds.length);
  } catch (e) {
    throw new StatisticsRoundError('bad-request', (e as Error).message);
  }
  const sessionId = `stats-${toHex(nacl.randomBytes(8))}`;
  const model = deps.model();
  const config = request.config ?? {};

  // 1. Layouts (not secret: names and lengths only). The largest group of identical layouts goes on.
  const failures: { siteId: string; reason: string }[] = [];
  const layouts = await Promise.allSettled(
    siteIds.map((id) => {
      const conn = deps.registry.get(id);
      if (!conn) return Promise.reject(new Error('site left'));
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        if (Number.isFinite(deps.stageMs)) timer = setTimeout(() => reject(new Error(`no statistics layout within ${deps.stageMs} ms`)), deps.stageMs);
      });
      return Promise.race([conn.statistics(sessionId, model.round, request.name, config, model.id, model.bytes), timeout]).finally(() => {
        if (timer) clearTimeout(timer);
        conn.cancelKey(`stats:${sessionId}`, new Error('statistics layout stage closed'));
      });
    }),
  );
  const groups = new Map<string, { entries: { name: string; length: number }[]; sites: string[] }>();
  layouts.forEach((r, i) => {
    if (r.status === 'rejected') return void failures.push({ siteId: siteIds[i], reason: (r.reason as Error)?.message ?? String(r.reason) });
    const k = layoutKey(r.value);
    const g = groups.get(k) ?? { entries: r.value, sites: [] };
    g.sites.push(siteIds[i]);
    groups.set(k, g);
  });
  const best = [...groups.values()].sort((a, b) => b.sites.length - a.sites.length)[0];
  if (!best) throw new StatisticsRoundError('aborted', 'no site returned a statistics layout', failures);
  for (const g of groups.values()) {
    if (g !== best) for (const s of g.sites) failures.push({ siteId: s, reason: 'its statistics layout differs from the other sites' });
  }
  if (best.sites.length < 3) {
    throw new StatisticsRoundError(groups.size > 1 ? 'layout-mismatch' : 'not-enough-sites', `only ${best.sites.length} site(s) agree on a statistics layout`, failures);
  }
  let layout: PackLayout;
  try {
    const lengths: Record<string, number> = {};
    for (const e of best.entries) lengths[e.name] = e.length;
    if (Object.keys(lengths).length !== best.entries.length) throw new Error('duplicate statistic names');
    layout = packLayout(lengths);
    if (layout.totalLength < 1) throw new Error('the statistics are empty');
  } catch (e) {
    throw new StatisticsRoundError('layout-mismatch', (e as Error).message, failures);
  }

  // 2. The masked sum.
  const enrolled = new Map<string, Uint8Array>();
  for (const id of best.sites) {
    const k = deps.enrollment.keyOf(id);
    if (!k) throw new StatisticsRoundError('bad-request', `"${id}" has no enrolled identity key`);
    enrolled.set(id, k);
  }
  let cfg;
  try {
    cfg = makeSecAggConfig({
      roundId: sessionId,
      siteIds: best.sites,
      vectorLength: layout.totalLength,
      quant,
      ...(request.threshold ?? deps.secure?.threshold ? { threshold: request.threshold ?? deps.secure?.threshold } : {}),
      ...(deps.secure?.degree !== undefined ? { degree: deps.secure.degree } : {}),
    });
  } catch (e) {
    throw new StatisticsRoundError('bad-request', (e as Error).message, failures);
  }
  const enrolledB64 = Object.fromEntries([...enrolled].map(([id, k]) => [id, toBase64(k)]));
  const outcome = await driveSecAgg({
    sessionId,
    config: cfg,
    enrolled,
    registry: deps.registry,
    stageMs: deps.stageMs,
    signal: deps.signal,
    logger: deps.logger,
    modelBytes: model.bytes,
    setupFor: () => ({
      purpose: 'statistics',
      round: model.round,
      enrolled: enrolledB64,
      modelId: model.id,
      statistics: { name: request.name, entries: layout.entries.map((e) => ({ name: e.name, length: e.length })) },
    }),
    ...(deps.hooks ? { hooks: deps.hooks } : {}),
  });
  const all = [...failures, ...outcome.failures.map((f: DriveFailure) => ({ siteId: f.siteId, reason: `${f.stage}: ${f.reason}` }))];
  if (!outcome.result) throw new StatisticsRoundError('aborted', outcome.error?.message ?? 'secure aggregation aborted', all);
  return { sums: unpackVectors(outcome.result.sum, layout), included: [...outcome.result.included] };
}
