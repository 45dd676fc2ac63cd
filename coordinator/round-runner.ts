/**
 * The round state machine: wait for sites -> configure -> fit (model sent chunked and sealed) -> aggregate ->
 * evaluate -> checkpoint -> record. Each stage transition is checked against a table before it runs; every
 * per-site failure (timeout, disconnect, error reply, invalid update) is passed to the strategy explicitly.
 * No sockets here: sites are reached through SiteConnection, weights through pure strategies.
 */
import { EventEmitter } from 'node:events';
import nacl from 'tweetnacl';
import { toHex } from '../protocol/bytes.ts';
import type { Logger } from '../protocol/common/index.ts';
import { cloneWeightSet, type WeightSet } from '../protocol/named-tensor.ts';
import { decodeWeightSet, encodeWeightSet } from '../protocol/tensor-codec.ts';
import type { Enrollment } from '../protocol/enrollment.ts';
import type { CheckpointStore } from './checkpoint-store.ts';
import type { SecAggTestHooks } from './secagg-driver.ts';
import { runSecureFit, type SecureAggregationOptions } from './secure-fit.ts';
import type { CoordinatorMetrics } from './metrics-registry.ts';
import type { RoundRecord, SiteRoundRecord } from './round-history.ts';
import { judgeRun, type RunOutcome } from './run-checks.ts';
import { CoordinatorError } from './coordinator-error.ts';

export { CoordinatorError };
import { SiteRequestError, type SiteConnection } from './site-connection.ts';
import type { SiteRegistry } from './site-registry.ts';
import { checkUpdateMatches, weightedMetricMeans } from './strategies/aggregate.ts';
import { replyCount, type EvaluateResult, type FitResult, type RoundFailure, type Strategy } from './strategies/strategy.ts';

export type Stage =
  | 'idle'
  | 'waiting_for_sites'
  | 'fit'
  | 'aggregate_fit'
  | 'evaluate'
  | 'aggregate_evaluate'
  | 'checkpoint'
  | 'after_rounds'
  | 'finished'
  | 'stopped';

const TRANSITIONS: Record<Stage, readonly Stage[]> = {
  idle: ['waiting_for_sites', 'after_rounds', 'finished', 'stopped'],
  waiting_for_sites: ['fit', 'stopped'],
  fit: ['aggregate_fit', 'stopped'],
  aggregate_fit: ['evaluate', 'stopped'],
  evaluate: ['aggregate_evaluate', 'stopped'],
  aggregate_evaluate: ['checkpoint', 'stopped'],
  checkpoint: ['waiting_for_sites', 'after_rounds', 'finished', 'stopped'],
  after_rounds: ['finished', 'stopped'],
  finished: [],
  stopped: [],
};

export interface RoundTimeouts {
  /** How long a round waits for `minSites` connected sites (default Infinity). */
  waitForSitesMs: number;
  /** Per-site budget for receiving the model, training and returning the update. */
  fitMs: number;
  evaluateMs: number;
  /**
   * After the last round, how long to wait for sites to hang up on `finish` before `done` resolves (default 5 s),
   * so a caller that closes the coordinator right away does not cut the `finish` message off.
   */
  finishMs: number;
  /**
   * When a selected site disconnects mid-stage, how long to wait for it to reconnect and resume the same request
   * (within the stage timeout) before counting it as failed (default 0: fail at once). The model download and the
   * update upload then resume at the first missing chunk.
   */
  reconnectGraceMs: number;
}

/** Events a caller can listen to for progress (`handle.events.on('roundCompleted', ...)`). */
export interface RoundEvents {
  stage: [stage: Stage, round: number];
  roundStarted: [round: number, siteIds: string[]];
  siteFailed: [failure: RoundFailure & { round: number }];
  /** A site's fit or evaluate reply was accepted. */
  siteReplied: [reply: { round: number; stage: 'fit' | 'evaluate'; siteId: string; numExamples: number; metrics: Record<string, number> }];
  roundCompleted: [record: RoundRecord];
  finished: [history: RoundRecord[], outcome: RunOutcome];
}

export interface RoundRunnerOptions {
  strategy: Strategy;
  registry: SiteRegistry;
  rounds: number;
  minSites: number;
  timeouts: RoundTimeouts;
  logger: Logger;
  metrics: CoordinatorMetrics;
  store: CheckpointStore | null;
  /** Largest encoded update accepted from a site (bytes). */
  maxUpdateBytes: number;
  /** When set, the fit stage runs through secure aggregation (secure-fit.ts): the coordinator sees only sums. */
  secure?: { options: SecureAggregationOptions; enrollment: Enrollment; hooks?: SecAggTestHooks };
  /**
   * Runs after the last round while the sites are still connected (e.g. a statistics round on the final model).
   * Its failure is logged and does not undo the training.
   */
  afterRounds?: () => Promise<void>;
  /** Fraction of rounds that must aggregate for the run to count as done (see run-checks.ts `judgeRun`). */
  minAggregatedFraction: number;
}

function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  if (!Number.isFinite(ms)) return p;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      onTimeout();
      reject(new SiteRequestError('timeout', `no reply within ${ms} ms`));
    }, ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

function failureOf(siteId: string, stage: 'fit' | 'evaluate', e: unknown): RoundFailure {
  if (e instanceof SiteRequestError) return { siteId, stage, code: e.code, reason: e.message };
  return { siteId, stage, code: 'invalid_reply', reason: (e as Error)?.message ?? String(e) };
}

export class RoundRunner extends EventEmitter<RoundEvents> {
  stage: Stage = 'idle';
  round = 0;
  weights: WeightSet;
  history: RoundRecord[];
  /** Set once the last round is over (before the after-rounds step). */
  outcome: RunOutcome | null = null;
  private readonly abort = new AbortController();

  constructor(
    private readonly o: RoundRunnerOptions,
    initial: { weights: WeightSet; lastRound: number; history: RoundRecord[] },
  ) {
    super();
    this.weights = cloneWeightSet(initial.weights);
    this.round = initial.lastRound;
    this.history = [...initial.history];
  }

  get finished(): boolean {
    return this.stage === 'finished';
  }

  private enter(next: Stage): void {
    if (!TRANSITIONS[this.stage].includes(next)) throw new CoordinatorError('bad_transition', `${this.stage} -> ${next}`);
    this.stage = next;
    this.emit('stage', next, this.round);
  }

  stop(): void {
    if (this.stage === 'finished' || this.stage === 'stopped') return;
    this.stage = 'stopped';
    this.abort.abort(new CoordinatorError('stopped', 'coordinator stopped'));
  }

  private checkStopped(): void {
    if (this.abort.signal.aborted) throw new CoordinatorError('stopped', 'coordinator stopped');
  }

  /** Run the remaining rounds; resolves with the full history. */
  async run(): Promise<RoundRecord[]> {
    const o = this.o;
    while (this.round < o.rounds) {
      this.checkStopped();
      const round = this.round + 1;
      this.enter('waiting_for_sites');
      this.round = round;
      o.metrics.currentRound.set({}, round);
      await o.registry.waitForCount(o.minSites, o.timeouts.waitForSitesMs, this.abort.signal).catch((e: Error) => {
        if (this.abort.signal.aborted) throw new CoordinatorError('stopped', 'coordinator stopped');
        throw new CoordinatorError('not_enough_sites', e.message);
      });
      this.checkStopped();
      const record = await this.runRound(round);
      this.history.push(record);
      o.metrics.roundsCompleted.inc();
      if (record.meanTrainLoss !== null) o.metrics.meanTrainLoss.set({}, record.meanTrainLoss);
      for (const [k, v] of Object.entries(record.evalMetrics ?? {})) o.metrics.evalMetric.set({ metric: k }, v);
      if (record.secureAggregation) {
        o.metrics.secureRounds.inc({ outcome: record.secureAggregation.error === null ? 'aggregated' : 'aborted' });
        o.metrics.secureExcluded.inc({}, record.secureAggregation.excluded.length);
      }
      this.emit('roundCompleted', record);
    }
    this.checkStopped();
    this.outcome = judgeRun(this.history, o.minAggregatedFraction);
    if (!this.outcome.ok) o.logger.error({ code: 'run_failed', ...this.outcome }, `the run did not train: ${this.outcome.reason}`);
    if (o.afterRounds) {
      this.enter('after_rounds');
      await o.afterRounds().catch((e: Error) => o.logger.error({ code: 'after_rounds_failed', err: e.message }, 'after-rounds step failed'));
      this.checkStopped();
    }
    if (this.stage !== 'finished') this.enter('finished');
    for (const conn of o.registry.all()) conn.finish('all rounds completed', this.round);
    await o.registry.waitForEmpty(o.timeouts.finishMs, this.abort.signal).catch((e: Error) => {
      o.logger.warn({ err: e.message }, 'sites did not hang up after finish');
    });
    this.emit('finished', this.history, this.outcome);
    return this.history;
  }

  private async runRound(round: number): Promise<RoundRecord> {
    const o = this.o;
    const started = Date.now();
    const startedAt = new Date(started).toISOString();
    const failures: RoundFailure[] = [];
    const fail = (f: RoundFailure): void => {
      failures.push(f);
      o.metrics.failures.inc({ stage: f.stage, code: f.code });
      o.logger.warn({ round, ...f }, 'site failed');
      this.emit('siteFailed', { ...f, round });
    };

    // ---- fit ------------------------------------------------------------------------------------
    this.enter('fit');
    const global = this.weights;
    const model = this.encodeModel(global);
    const fitIns = o.strategy.configureFit(round, o.registry.ids().map((siteId) => ({ siteId })), global);
    this.emit('roundStarted', round, fitIns.map((i) => i.siteId));
    o.logger.info({ round, sites: fitIns.map((i) => i.siteId) }, 'round started');
    const fitResults: FitResult[] = [];
    let secureInfo: RoundRecord['secureAggregation'];
    if (o.secure) {
      const connected = fitIns.filter((i) => o.registry.get(i.siteId));
      for (const i of fitIns) if (!o.registry.get(i.siteId)) fail({ siteId: i.siteId, stage: 'fit', code: 'disconnected', reason: 'site left before fit' });
      const sf = await runSecureFit({
        round,
        fitIns: connected,
        global,
        strategy: o.strategy,
        options: o.secure.options,
        registry: o.registry,
        enrollment: o.secure.enrollment,
        stageMs: o.timeouts.fitMs,
        signal: this.abort.signal,
        logger: o.logger,
        model,
        ...(o.secure.hooks ? { hooks: o.secure.hooks } : {}),
      });
      this.checkStopped();
      sf.failures.forEach(fail);
      fitResults.push(...sf.results);
      secureInfo = { included: sf.included, excluded: sf.excluded, totalExamples: sf.totalExamples, error: sf.error };
      for (const r of sf.results) this.emit('siteReplied', { round, stage: 'fit', siteId: r.siteId, numExamples: r.numExamples, metrics: { ...r.metrics } });
    } else {
      const fitOutcomes = await Promise.allSettled(
        fitIns.map(async (ins): Promise<FitResult> => {
          const rep = await this.request(ins.siteId, 'fit', round, o.timeouts.fitMs, (conn) => conn.fit(round, ins.config, model.id, model.bytes));
          const weights = decodeWeightSet(rep.update, { maxBytes: o.maxUpdateBytes });
          checkUpdateMatches(global, weights);
          if (rep.numExamples <= 0) throw new SiteRequestError('invalid_reply', 'update reports 0 examples');
          this.emit('siteReplied', { round, stage: 'fit', siteId: ins.siteId, numExamples: rep.numExamples, metrics: rep.metrics });
          return { siteId: ins.siteId, weights, numExamples: rep.numExamples, metrics: rep.metrics };
        }),
      );
      this.checkStopped();
      fitOutcomes.forEach((r, i) => (r.status === 'fulfilled' ? fitResults.push(r.value) : fail(failureOf(fitIns[i].siteId, 'fit', r.reason))));
    }

    // ---- aggregate ------------------------------------------------------------------------------
    this.enter('aggregate_fit');
    let aggregated = false;
    let strategyError: string | null = null;
    let fitMetrics: Record<string, number> = {};
    if (replyCount(fitResults) >= o.minSites) {
      try {
        const agg = o.strategy.aggregateFit(round, fitResults, failures, global);
        if (agg) {
          this.weights = agg.weights;
          fitMetrics = agg.metrics;
          aggregated = true;
        }
      } catch (e) {
        // A strategy error must not kill the coordinator: keep the model, record the round as not aggregated.
        strategyError = (e as Error).message;
        o.metrics.strategyFailures.inc();
        o.logger.error({ code: 'strategy_failed', round, err: strategyError }, 'aggregation failed; global model kept');
      }
    } else {
      o.logger.warn({ round, replies: replyCount(fitResults), minSites: o.minSites }, 'too few fit replies; global model kept');
    }

    // ---- evaluate -------------------------------------------------------------------------------
    this.enter('evaluate');
    const evalModel = this.encodeModel(this.weights);
    const evalIns = o.strategy.configureEvaluate(round, o.registry.ids().map((siteId) => ({ siteId })), this.weights);
    const evalOutcomes = await Promise.allSettled(
      evalIns.map(async (ins): Promise<EvaluateResult> => {
        const rep = await this.request(ins.siteId, 'evaluate', round, o.timeouts.evaluateMs, (conn) => conn.evaluate(round, ins.config, evalModel.id, evalModel.bytes));
        this.emit('siteReplied', { round, stage: 'evaluate', siteId: ins.siteId, numExamples: rep.numExamples, metrics: rep.metrics });
        return { siteId: ins.siteId, numExamples: rep.numExamples, metrics: rep.metrics };
      }),
    );
    this.checkStopped();
    const evalResults: EvaluateResult[] = [];
    evalOutcomes.forEach((r, i) => (r.status === 'fulfilled' ? evalResults.push(r.value) : fail(failureOf(evalIns[i].siteId, 'evaluate', r.reason))));
    this.enter('aggregate_evaluate');
    const evalMetrics = evalResults.length > 0 ? o.strategy.aggregateEvaluate(round, evalResults, failures.filter((f) => f.stage === 'evaluate')) : null;

    // ---- record + checkpoint --------------------------------------------------------------------
    this.enter('checkpoint');
    const record = this.record(round, fitResults, evalResults, failures, aggregated, fitMetrics, evalMetrics, startedAt, started);
    if (secureInfo) record.secureAggregation = secureInfo;
    if (strategyError !== null) record.strategyError = strategyError;
    if (o.store) {
      try {
        await o.store.save({
          round,
          weights: this.weights,
          history: [...this.history, record],
          strategy: o.strategy.name,
          strategyState: o.strategy.exportState?.() ?? null,
        });
      } catch (e) {
        // Training goes on (the sites' work is not thrown away); the failure is logged and counted so it is seen.
        o.metrics.checkpointFailures.inc();
        o.logger.error({ round, err: (e as Error).message }, 'checkpoint failed');
      }
    }
    return record;
  }

  /**
   * One request to one site under the stage timeout. If the site drops and reconnects within the grace period,
   * the same request is re-issued on the new connection (the site answers from its cache; transfers resume).
   */
  private async request<T>(siteId: string, stage: 'fit' | 'evaluate', round: number, timeoutMs: number, call: (conn: SiteConnection) => Promise<T>): Promise<T> {
    const local = new AbortController();
    const signal = AbortSignal.any([this.abort.signal, local.signal]);
    let current: SiteConnection | undefined = this.o.registry.get(siteId);
    const attempt = async (): Promise<T> => {
      for (;;) {
        if (!current) throw new SiteRequestError('disconnected', `site left before ${stage}`);
        try {
          return await call(current);
        } catch (e) {
          if (!(e instanceof SiteRequestError) || e.code !== 'disconnected' || this.o.timeouts.reconnectGraceMs <= 0 || signal.aborted) throw e;
          this.o.logger.info({ round, siteId, stage }, 'site dropped mid-request; waiting for it to reconnect');
          current = await this.o.registry.waitForSite(siteId, this.o.timeouts.reconnectGraceMs, signal).catch(() => {
            throw e;
          });
        }
      }
    };
    try {
      return await withTimeout(attempt(), timeoutMs, () => {
        local.abort();
        current?.cancel(stage, round, new SiteRequestError('timeout', `${stage} timed out`));
      });
    } finally {
      local.abort(); // releases a pending reconnect wait, if any
    }
  }

  /** The current global model, encoded, with its content-addressed id (for statistics rounds). */
  currentModel(): { round: number; id: string; bytes: Uint8Array } {
    return { round: this.round, ...this.encodeModel(this.weights) };
  }

  private encodeModel(ws: WeightSet): { id: string; bytes: Uint8Array } {
    const bytes = encodeWeightSet(ws);
    // Content-addressed id: the same weights are never sent twice to a site that already holds them.
    return { id: `model-${toHex(nacl.hash(bytes).subarray(0, 12))}`, bytes };
  }

  private record(
    round: number,
    fit: FitResult[],
    ev: EvaluateResult[],
    failures: RoundFailure[],
    aggregated: boolean,
    fitMetrics: Record<string, number>,
    evalMetrics: Record<string, number> | null,
    startedAt: string,
    started: number,
  ): RoundRecord {
    const sites = new Map<string, SiteRoundRecord>();
    const site = (siteId: string): SiteRoundRecord => {
      let s = sites.get(siteId);
      if (!s) sites.set(siteId, (s = { siteId, numExamples: 0, trainLoss: null, fitMetrics: {}, evalNumExamples: null, evalMetrics: null }));
      return s;
    };
    for (const r of fit) {
      if (r.aggregateOf) {
        // Secure aggregation: per-site counts and losses are unknown to the coordinator (only their sums are).
        for (const id of r.aggregateOf) site(id).numExamples = null;
        continue;
      }
      const s = site(r.siteId);
      s.numExamples = r.numExamples;
      s.fitMetrics = { ...r.metrics };
      s.trainLoss = Number.isFinite(r.metrics.trainLoss) ? r.metrics.trainLoss : null;
    }
    for (const r of ev) {
      const s = site(r.siteId);
      s.evalNumExamples = r.numExamples;
      s.evalMetrics = { ...r.metrics };
    }
    const withLoss = fit.filter((r) => Number.isFinite(r.metrics.trainLoss)).map((r) => ({ numExamples: r.numExamples, metrics: { trainLoss: r.metrics.trainLoss } }));
    const meanTrainLoss = withLoss.length > 0 ? weightedMetricMeans(withLoss).trainLoss : null;
    return {
      round,
      meanTrainLoss,
      aggregated,
      sites: [...sites.values()].sort((a, b) => (a.siteId < b.siteId ? -1 : 1)),
      failures,
      evalMetrics,
      fitMetrics,
      startedAt,
      durationMs: Date.now() - started,
    };
  }
}
