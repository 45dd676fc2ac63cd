/**
 * The round state machine: (round 0: evaluate the initial model, when the strategy asks) then, per round, wait for
 * sites -> fit (through the FitWorkflow: plain or secure) -> aggregate (the strategy alone decides whether there are
 * enough results) -> evaluate -> checkpoint -> record. Each stage transition is checked before it runs; every
 * per-site failure (timeout, disconnect, error reply, invalid update) and every strategy failure is passed on
 * explicitly and recorded. No sockets here: sites are reached through the workflows, weights through pure strategies.
 */
import { EventEmitter } from 'node:events';
import nacl from 'tweetnacl';
import { cloneWeightSet, encodeWeightSet, toHex, type WeightSet } from '../../protocol/index.ts';
import type { Logger } from '../../protocol/common/index.ts';
import { CoordinatorError } from '../errors/index.ts';
import type { CoordinatorMetrics } from '../metrics/index.ts';
import type { SiteRegistry } from '../sites/index.ts';
import type { CheckpointStore } from '../storage/index.ts';
import type { EvaluateResult, RoundFailure, Strategy } from '../strategies/index.ts';
import { runEvaluation, type EncodedModel, type ExchangeContext, type FitOutcome, type FitWorkflow, type SiteReply } from '../workflows/index.ts';
import { buildRoundRecord } from './record-builder.ts';
import type { RoundRecord } from './round-record.ts';
import { judgeRun, type RunOutcome } from './run-checks.ts';
import { checkTransition, type Stage } from './stages.ts';

export interface RoundTimeouts {
  /** How long a round waits for `minSites` connected sites (default Infinity). */
  waitForSitesMs: number;
  /** Per-site budget for receiving the model, training and returning the update (each SecAgg stage under secure aggregation). */
  fitMs: number;
  evaluateMs: number;
  /**
   * After the last round, how long to wait for sites to hang up on `finish` before `done` resolves (default 5 s),
   * so a caller that closes the coordinator right away does not cut the `finish` message off.
   */
  finishMs: number;
  /**
   * When a selected site disconnects mid-stage, how long to wait for it to reconnect and resume the same request
   * (within the stage timeout) before counting it as failed (default DEFAULT_RECONNECT_GRACE_MS, 5 min; 0: fail at
   * once). The site answers the re-issued request from its cache (no second training run); the model download and
   * the update upload resume at the first missing chunk. Applies to every exchange: fit, evaluate, each SecAgg stage
   * and the statistics rounds.
   */
  reconnectGraceMs: number;
  /**
   * A coordinator restarted after the last round (its predecessor was killed between writing the run folder and
   * telling every site `finish`) waits up to this long (and no longer than `waitForSitesMs`) for the enrolled sites
   * to reconnect, so that it can release them; without it a site still retrying was stranded until it gave up
   * (default DEFAULT_RELEASE_AFTER_RESTART_MS: twice the sites' default 30 s backoff cap).
   */
  releaseAfterRestartMs: number;
}

/** See RoundTimeouts.releaseAfterRestartMs. */
export const DEFAULT_RELEASE_AFTER_RESTART_MS = 60_000;

/** Events a caller can listen to for progress (`handle.events.on('roundCompleted', ...)`). */
export interface RoundEvents {
  stage: [stage: Stage, round: number];
  roundStarted: [round: number, siteIds: string[]];
  siteFailed: [failure: RoundFailure & { round: number }];
  /** A site's fit or evaluate reply was accepted (under secure aggregation, the one sum: siteId `secure-aggregate`). */
  siteReplied: [reply: SiteReply & { round: number }];
  roundCompleted: [record: RoundRecord];
  finished: [history: RoundRecord[], outcome: RunOutcome];
}

export interface RoundRunnerOptions {
  strategy: Strategy;
  /** Plain or secure (or a wrapper around one of them). */
  fitWorkflow: FitWorkflow;
  registry: SiteRegistry;
  rounds: number;
  minSites: number;
  timeouts: RoundTimeouts;
  logger: Logger;
  metrics: CoordinatorMetrics;
  store: CheckpointStore | null;
  /** Largest encoded update accepted from a site (bytes). */
  maxUpdateBytes: number;
  /** Fraction of rounds that must aggregate for the run to count as done (see run-checks.ts `judgeRun`). */
  minAggregatedFraction: number;
  /**
   * Runs after the last round while the sites are still connected (e.g. a statistics round on the final model).
   * Its failure is logged and does not undo the training.
   */
  afterRounds?: () => Promise<void>;
  /** The sites that may be waiting for `finish` after a restart (the allow-list). */
  enrolledSiteIds?: () => string[];
}

/** A global model for the wire, with its content-addressed id (a model a site holds is not sent again). */
export function encodeModel(ws: WeightSet): EncodedModel {
  const bytes = encodeWeightSet(ws);
  return { id: `model-${toHex(nacl.hash(bytes).subarray(0, 12))}`, bytes };
}

export class RoundRunner extends EventEmitter<RoundEvents> {
  stage: Stage = 'idle';
  round = 0;
  weights: WeightSet;
  history: RoundRecord[];
  /** Set once the last round is over (before the after-rounds step). */
  outcome: RunOutcome | null = null;
  private readonly abort = new AbortController();
  /** This process resumed a run whose rounds were all done: its sites may still be retrying, unreleased. */
  private readonly resumedAfterLastRound: boolean;

  constructor(
    private readonly o: RoundRunnerOptions,
    initial: { weights: WeightSet; lastRound: number; history: RoundRecord[] },
  ) {
    super();
    this.weights = cloneWeightSet(initial.weights);
    this.round = initial.lastRound;
    this.history = [...initial.history];
    this.resumedAfterLastRound = o.rounds > 0 && initial.lastRound >= o.rounds;
  }

  get finished(): boolean {
    return this.stage === 'finished';
  }

  private stageStarted = 0;

  private enter(next: Stage): void {
    checkTransition(this.stage, next);
    const now = performance.now();
    if (this.stageStarted > 0 && this.stage !== 'idle') this.o.metrics.stageDuration.observe({ stage: this.stage }, (now - this.stageStarted) / 1000);
    this.stageStarted = now;
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
    if (o.strategy.evaluatesInitialModel === true && this.round === 0 && !this.history.some((r) => r.round === 0)) await this.initialEvaluation();
    while (this.round < o.rounds) {
      this.checkStopped();
      await this.waitForSites(this.round + 1);
      const record = await this.runRound(this.round);
      this.complete(record);
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
    if (this.resumedAfterLastRound) await this.releaseReturningSites();
    await o.registry.waitForEmpty(o.timeouts.finishMs, this.abort.signal).catch((e: Error) => {
      o.logger.warn({ code: 'finish_not_acknowledged', err: e.message, connected: o.registry.ids() }, 'sites did not hang up after finish');
    });
    this.emit('finished', this.history, this.outcome);
    return this.history;
  }

  /**
   * After a restart past the last round: each enrolled site that reconnects is told `finish` at once (the gateway
   * does it once the stage is 'finished'); wait for all of them, bounded. Sites released by the killed coordinator
   * do not come back: they are named when the wait ends.
   */
  private async releaseReturningSites(): Promise<void> {
    const o = this.o;
    const ids = o.enrolledSiteIds?.() ?? [];
    if (ids.length === 0) return;
    const waitMs = Math.min(o.timeouts.releaseAfterRestartMs, o.timeouts.waitForSitesMs);
    o.logger.info({ code: 'releasing_sites', waitMs, sites: o.registry.unseen(ids) }, 'run already finished before this restart; waiting for its sites to reconnect and release them');
    await o.registry.waitForSeen(ids, waitMs, this.abort.signal).catch(() => {
      if (this.abort.signal.aborted) return;
      o.logger.warn({ code: 'sites_not_released', sites: o.registry.unseen(ids), waitMs }, 'sites did not reconnect after the restart (released earlier, or gone); they stop at their own give-up limit');
    });
  }

  private async waitForSites(round: number): Promise<void> {
    const o = this.o;
    this.enter('waiting_for_sites');
    this.round = round;
    o.metrics.currentRound.set(round);
    await o.registry.waitForCount(o.minSites, o.timeouts.waitForSitesMs, this.abort.signal).catch((e: Error) => {
      if (this.abort.signal.aborted) throw new CoordinatorError('stopped', 'coordinator stopped');
      o.logger.error({ code: 'not_enough_sites', round, minSites: o.minSites, connected: o.registry.ids(), err: e.message }, 'too few sites connected; the run stops');
      throw new CoordinatorError('not_enough_sites', e.message);
    });
    this.checkStopped();
  }

  /** Record a finished round, checkpoint it, and publish it (metrics, events). */
  private complete(record: RoundRecord): void {
    const o = this.o;
    this.history.push(record);
    if (record.round === 0) return;
    o.metrics.roundsCompleted.inc();
    o.metrics.roundDuration.observe(record.durationMs / 1000);
    if (record.meanTrainLoss !== null) o.metrics.meanTrainLoss.set(record.meanTrainLoss);
    for (const [k, v] of Object.entries(record.evalMetrics ?? {})) o.metrics.evalMetric.set({ metric: k }, v);
    if (record.secureAggregation) {
      o.metrics.secureRounds.inc({ outcome: record.secureAggregation.error === null ? 'aggregated' : 'aborted' });
      o.metrics.secureExcluded.inc(record.secureAggregation.excluded.length);
    }
    this.emit('roundCompleted', record);
  }

  private exchange(round: number, stageMs: number): ExchangeContext {
    return {
      round,
      registry: this.o.registry,
      signal: this.abort.signal,
      logger: this.o.logger,
      stageMs,
      reconnectGraceMs: this.o.timeouts.reconnectGraceMs,
      onReply: (r) => this.emit('siteReplied', { ...r, round }),
    };
  }

  private fail(round: number, f: RoundFailure): void {
    this.o.metrics.failures.inc({ code: f.code, stage: f.stage });
    this.o.logger.warn({ code: `${f.stage}_${f.code}`, round, siteId: f.siteId, stage: f.stage, reason: f.reason }, `site ${f.siteId} failed ${f.stage} in round ${round}`);
    this.emit('siteFailed', { ...f, round });
  }

  /** Round 0: the initial model evaluated by the sites (Flower evaluates the initial parameters before round 1). */
  private async initialEvaluation(): Promise<void> {
    await this.waitForSites(0);
    const started = Date.now();
    const ev = await this.evaluateStage(0);
    const record = buildRoundRecord({ round: 0, fit: [], evaluate: ev.results, failures: ev.failures, aggregated: false, fitMetrics: {}, evalMetrics: ev.metrics, strategyError: null, secure: undefined, started });
    await this.checkpoint(record);
    this.complete(record);
  }

  private async runRound(round: number): Promise<RoundRecord> {
    const started = Date.now();
    const fit = await this.fitStage(round);
    const agg = this.aggregateStage(round, fit);
    const ev = await this.evaluateStage(round);
    const record = buildRoundRecord({
      round,
      fit: fit.results,
      evaluate: ev.results,
      failures: [...fit.failures, ...ev.failures],
      aggregated: agg.aggregated,
      fitMetrics: agg.fitMetrics,
      evalMetrics: ev.metrics,
      strategyError: agg.strategyError,
      secure: fit.secure,
      started,
    });
    await this.checkpoint(record);
    return record;
  }

  private async fitStage(round: number): Promise<FitOutcome> {
    const o = this.o;
    this.enter('fit');
    const instructions = o.strategy.configureFit(round, o.registry.ids().map((siteId) => ({ siteId })), this.weights);
    this.emit('roundStarted', round, instructions.map((i) => i.siteId));
    o.logger.info({ round, sites: instructions.map((i) => i.siteId), workflow: o.fitWorkflow.kind }, 'round started');
    const outcome = await o.fitWorkflow.fit({
      ...this.exchange(round, o.timeouts.fitMs),
      instructions,
      global: this.weights,
      model: encodeModel(this.weights),
      strategy: o.strategy,
      maxUpdateBytes: o.maxUpdateBytes,
    });
    this.checkStopped();
    for (const f of outcome.failures) this.fail(round, f);
    return outcome;
  }

  /** The strategy alone decides whether the results suffice (null keeps the model); an exception is recorded. */
  private aggregateStage(round: number, fit: FitOutcome): { aggregated: boolean; fitMetrics: Record<string, number>; strategyError: string | null } {
    const o = this.o;
    this.enter('aggregate_fit');
    try {
      const agg = o.strategy.aggregateFit(round, fit.results, fit.failures, this.weights);
      if (!agg) {
        o.logger.warn({ code: 'not_aggregated', round, results: fit.results.length, failures: fit.failures.length }, 'the strategy kept the global model (too few results)');
        return { aggregated: false, fitMetrics: {}, strategyError: null };
      }
      this.weights = agg.weights;
      return { aggregated: true, fitMetrics: agg.metrics, strategyError: null };
    } catch (e) {
      // A strategy error must not kill the coordinator: keep the model, record the round as not aggregated.
      const strategyError = (e as Error).message;
      o.metrics.strategyFailures.inc();
      o.logger.error({ code: 'strategy_failed', round, strategy: o.strategy.name, err: strategyError }, 'aggregation failed; global model kept');
      return { aggregated: false, fitMetrics: {}, strategyError };
    }
  }

  private async evaluateStage(round: number): Promise<{ results: EvaluateResult[]; failures: RoundFailure[]; metrics: Record<string, number> | null }> {
    const o = this.o;
    this.enter('evaluate');
    const sites = o.registry.ids().map((siteId) => ({ siteId }));
    const instructions = o.strategy.configureEvaluate(round, sites, this.weights);
    const ev = await runEvaluation(this.exchange(round, o.timeouts.evaluateMs), instructions, encodeModel(this.weights));
    this.checkStopped();
    for (const f of ev.failures) this.fail(round, f);
    this.enter('aggregate_evaluate');
    const metrics = ev.results.length > 0 ? o.strategy.aggregateEvaluate(round, ev.results, ev.failures) : null;
    return { ...ev, metrics };
  }

  private async checkpoint(record: RoundRecord): Promise<void> {
    const o = this.o;
    this.enter('checkpoint');
    if (!o.store) return;
    try {
      await o.store.save({ round: record.round, weights: this.weights, record, strategy: o.strategy.name, strategyState: o.strategy.exportState?.() ?? null });
    } catch (e) {
      // Training goes on (the sites' work is not thrown away); the failure is logged and counted so it is seen.
      o.metrics.checkpointFailures.inc();
      o.logger.error({ code: 'checkpoint_failed', round: record.round, dir: o.store.dir, err: (e as Error).message }, 'checkpoint failed');
    }
  }

  /** The current global model, encoded, with its content-addressed id (for statistics rounds). */
  currentModel(): { round: number } & EncodedModel {
    return { round: this.round, ...encodeModel(this.weights) };
  }
}

export type { Stage };
