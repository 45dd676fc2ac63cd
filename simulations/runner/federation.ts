/**
 * The processes of one simulated federation: the coordinator, then one process per site once it listens. Reads
 * their typed events, prints progress, and ends in one of three ways: every round ran ('finished'), the run was
 * stopped by its caller's AbortSignal (SIGINT/SIGTERM on `fedsfda simulate`: 'interrupted'), or a child failed or
 * the deadline passed (SimulationError). In every case all children are stopped (SIGTERM, then SIGKILL after a grace
 * period) and awaited before this returns, so no process outlives the run and the coordinator's port is free.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { getLogger } from '../../protocol/common/index.ts';
import { EVAL_METRIC, metricValue, roundRecordSchema, type RoundRecord } from '../../protocol/contracts/index.ts';
import { coordinatorEventSchema, siteEventSchema, type CoordinatorEvent, type SiteEvent, type SiteProgressEvent } from './child-events.ts';
import type { SimulationJob } from './job.ts';
import { spawnTs, type TsChild } from './spawn-ts.ts';

export class SimulationError extends Error {
  override readonly name = 'SimulationError';
  constructor(
    readonly code: 'child-failed' | 'timeout',
    message: string,
  ) {
    super(message);
  }
}

export type SiteReady = Extract<SiteEvent, { event: 'ready' }>;

export interface FederationOptions {
  readonly job: SimulationJob;
  readonly jobFile: string;
  /** Sites fine-tune after the last round (personalisation): wait for them before finishing. */
  readonly waitForSites: boolean;
  readonly personalizeEpochs: number;
  readonly timeoutMs: number;
  readonly log: (line: string) => void;
  /** Aborting stops the run: every child is stopped and the outcome is 'interrupted'. */
  readonly signal?: AbortSignal;
}

export interface FederationOutcome {
  readonly status: 'finished' | 'interrupted';
  /** The coordinator's round records (all of them, or those completed before the interruption). */
  readonly history: RoundRecord[];
  readonly sites: ReadonlyMap<string, SiteReady>;
  readonly personalized: ReadonlyMap<string, Record<string, number>>;
  /** Sample-level DP-SGD: each site's own accounting after its last fit. */
  readonly dpSgd: ReadonlyMap<string, SiteDpSgd>;
}

export interface SiteDpSgd {
  readonly epsilon: number;
  readonly delta: number;
  readonly steps: number;
  readonly noiseMultiplier: number;
}

/** How long a child may take to stop after SIGTERM before it is killed. */
const STOP_GRACE_MS = 15_000;

class Federation {
  private readonly children: TsChild[] = [];
  private readonly siteExits: Promise<number>[] = [];
  private readonly records: RoundRecord[] = [];
  /** How the coordinator said it ended ('finished' or 'stopped'), before it exited. */
  private coordinatorEnd: 'finished' | 'stopped' | null = null;
  readonly sites = new Map<string, SiteReady>();
  readonly personalized = new Map<string, Record<string, number>>();
  readonly dpSgd = new Map<string, SiteDpSgd>();
  private settled = false;
  private settle!: { resolve: (s: FederationOutcome['status']) => void; reject: (e: Error) => void };

  constructor(private readonly o: FederationOptions) {}

  async run(): Promise<FederationOutcome> {
    const ended = new Promise<FederationOutcome['status']>((resolve, reject) => (this.settle = { resolve, reject }));
    const onAbort = (): void => this.end('interrupted');
    this.o.signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => this.fail(new SimulationError('timeout', `simulation exceeded ${this.o.timeoutMs} ms`)), this.o.timeoutMs);
    try {
      if (this.o.signal?.aborted) this.end('interrupted');
      else this.startCoordinator();
      const status = await ended;
      return { status, history: await this.history(), sites: this.sites, personalized: this.personalized, dpSgd: this.dpSgd };
    } finally {
      clearTimeout(timer);
      this.o.signal?.removeEventListener('abort', onAbort);
      await Promise.all(this.children.map((c) => c.stop(STOP_GRACE_MS)));
    }
  }

  private end(status: FederationOutcome['status']): void {
    if (this.settled) return;
    this.settled = true;
    this.settle.resolve(status);
  }

  private fail(err: SimulationError): void {
    if (this.settled) return;
    this.settled = true;
    getLogger().error({ code: err.code === 'timeout' ? 'SIMULATION_TIMEOUT' : 'CHILD_FAILED' }, `simulation aborted: ${err.message}`);
    this.settle.reject(err);
  }

  /** The coordinator's history.json (written when it finished or was stopped), else the records it reported. */
  private async history(): Promise<RoundRecord[]> {
    try {
      const raw = JSON.parse(await readFile(join(this.o.job.outDir, 'history.json'), 'utf8')) as unknown;
      return roundRecordSchema.array().parse(raw);
    } catch {
      return [...this.records];
    }
  }

  private watch(child: TsChild, onClean: () => void): void {
    this.children.push(child);
    void child.exited.then((code) => {
      if (code !== 0) this.fail(new SimulationError('child-failed', `${child.name} exited with code ${code}\n${child.stderrTail()}`));
      else onClean();
    });
  }

  private invalid(child: string): (line: string, reason: string) => void {
    return (line, reason) => getLogger().warn({ code: 'BAD_CHILD_EVENT', child, reason }, `ignored a malformed event from ${child}: ${line.slice(0, 200)}`);
  }

  private startCoordinator(): void {
    const coordinator = spawnTs('coordinator', new URL('./coordinator-process.ts', import.meta.url), [this.o.jobFile], coordinatorEventSchema, {
      onEvent: (e) => this.onCoordinatorEvent(e),
      onInvalid: this.invalid('coordinator'),
    });
    this.watch(coordinator, () => {
      if (this.coordinatorEnd === 'stopped') return this.end('interrupted');
      if (this.coordinatorEnd === null) return this.fail(new SimulationError('child-failed', `coordinator exited without finishing its rounds\n${coordinator.stderrTail()}`));
      // With personalisation the sites fine-tune after the coordinator is done: wait for them to report.
      const sitesDone = this.o.waitForSites ? Promise.all(this.siteExits) : Promise.resolve([]);
      void sitesDone.then(() => this.end('finished'));
    });
  }

  private onCoordinatorEvent(e: CoordinatorEvent): void {
    const log = this.o.log;
    switch (e.event) {
      case 'listening':
        log(`coordinator listening on ${e.url}`);
        for (const site of this.o.job.sites) this.startSite(site.id, e.url);
        return;
      case 'roundStarted':
        return log(`round ${e.round} started with ${e.sites.join(', ')}`);
      case 'roundCompleted': {
        const r = e.record;
        this.records.push(r);
        const loss = r.meanTrainLoss === null ? 'n/a' : r.meanTrainLoss.toFixed(4);
        const dice = metricValue(r.evalMetrics, EVAL_METRIC.dice)?.toFixed(3) ?? 'n/a';
        return log(`round ${r.round} done in ${(r.durationMs / 1000).toFixed(1)} s: mean train loss ${loss}, mean val Dice ${dice}`);
      }
      case 'siteFailed':
        return log(`site failure: ${e.failure.siteId} in ${e.failure.stage} [${e.failure.code}]: ${e.failure.reason}`);
      case 'sourceStats':
        return log(`pooled source statistics from ${e.sites.join(', ')} -> source-stats.json`);
      case 'sourceStatsFailed':
        return log(`no source statistics package: ${e.message}`);
      case 'classHistogram':
        return log(`non-IID report from masked sums over ${e.sites.join(', ')}: heterogeneity ${e.heterogeneity.toFixed(5)} -> class-histogram.json`);
      case 'classHistogramFailed':
        return log(`no non-IID report: ${e.message}`);
      case 'finished':
        this.coordinatorEnd = 'finished';
        return;
      case 'stopped':
        this.coordinatorEnd = 'stopped';
        return log(`coordinator stopped after ${e.rounds} round(s)`);
      case 'error':
        return this.fail(new SimulationError('child-failed', `coordinator: ${e.code ? `[${e.code}] ` : ''}${e.message}`));
      default: {
        const never: never = e;
        throw new Error(`unhandled coordinator event ${JSON.stringify(never)}`);
      }
    }
  }

  private startSite(siteId: string, url: string): void {
    const child = spawnTs(siteId, new URL('./site-process.ts', import.meta.url), [this.o.jobFile, siteId], siteEventSchema, {
      onEvent: (e) => this.onSiteEvent(siteId, e),
      onInvalid: this.invalid(siteId),
    }, { ...process.env, FEDSFDA_COORDINATOR_URL: url });
    this.siteExits.push(child.exited);
    this.watch(child, () => {});
  }

  private onSiteProgress(siteId: string, p: SiteProgressEvent): void {
    const log = this.o.log;
    if (p.type === 'failed') log(`${siteId}: round ${p.round} ${p.stage} failed: ${p.reason}`);
    else if (p.type === 'dp-fit') {
      log(`${siteId}: round ${p.round}: update norm ${p.updateNorm.toFixed(4)} clipped to ${p.clip}, noise share sigma ${p.siteSigma.toFixed(1)} steps; own epsilon so far ${p.epsilon.toFixed(3)} (delta ${p.delta})`);
    } else if (p.type === 'dp-sgd-fit') {
      this.dpSgd.set(siteId, { epsilon: p.epsilon, delta: p.delta, steps: p.steps, noiseMultiplier: p.noiseMultiplier });
      log(`${siteId}: round ${p.round}: DP-SGD ${p.steps} noised steps so far (noise multiplier ${p.noiseMultiplier.toFixed(3)}, ${(100 * p.clippedFraction).toFixed(0)}% of slice gradients clipped); own epsilon so far ${p.epsilon.toFixed(3)} (delta ${p.delta})`);
    }
  }

  private onSiteEvent(siteId: string, e: SiteEvent): void {
    const log = this.o.log;
    switch (e.event) {
      case 'ready': {
        this.sites.set(siteId, e);
        const total = e.classHistogram.reduce((a, b) => a + b, 0);
        const shares = e.classHistogram.map((h, c) => `c${c} ${((100 * h) / total).toFixed(1)}%`).join(' ');
        return log(`${siteId}: ready on backend ${e.backend}, ${e.trainCases} cases / ${e.trainSlices} training and ${e.valSlices} validation slices; training pixels by class: ${shares}`);
      }
      case 'progress':
        return this.onSiteProgress(siteId, e.progress);
      case 'personalized':
        this.personalized.set(siteId, e.metrics);
        return log(`${siteId}: fine-tuned locally for ${this.o.personalizeEpochs} epoch(s): validation Dice ${metricValue(e.metrics, EVAL_METRIC.dice)?.toFixed(3) ?? 'n/a'}`);
      case 'done':
        return;
      case 'error':
        return this.fail(new SimulationError('child-failed', `${siteId}: ${e.code ? `[${e.code}] ` : ''}${e.message}`));
      default: {
        const never: never = e;
        throw new Error(`unhandled site event ${JSON.stringify(never)}`);
      }
    }
  }
}

/** Runs the federation's processes until they finish, fail, time out or are interrupted (see the file comment). */
export function runFederation(o: FederationOptions): Promise<FederationOutcome> {
  return new Federation(o).run();
}
