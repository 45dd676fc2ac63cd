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

/**
 * A simulation that could not finish: a child failed (its own typed code when it reported one, e.g. NOT_A_DATASET,
 * else CHILD_FAILED) or the deadline passed (SIMULATION_TIMEOUT). Not logged where it is raised: whoever catches it
 * logs it once (the CLI: one line with timestamp, level and `code`), so a failure never appears twice.
 */
export class SimulationError extends Error {
  override readonly name = 'SimulationError';
  constructor(
    readonly kind: 'child-failed' | 'timeout',
    readonly code: string,
    message: string,
    /** The process that failed (a site id or 'coordinator'), when one did. */
    readonly child?: string,
  ) {
    super(message);
  }
}

/** A child's failure as one message: `who: reason`, without the child's own trailing ` [CODE]` (the code is a field). */
function childFailure(who: string, message: string, code: string | undefined): SimulationError {
  const reason = code ? message.replace(new RegExp(`\\s*\\[${code.replace(/[^A-Za-z0-9_-]/g, '')}\\]$`), '') : message;
  return new SimulationError('child-failed', code ?? 'CHILD_FAILED', `${who} failed: ${reason}`, who);
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
  readonly memory: FederationMemory;
}

/** Peak resident memory of the run's processes, as each reported it when done (null: it did not report). */
export interface FederationMemory {
  readonly coordinatorPeakRssBytes: number | null;
  readonly sitesPerProcess: number;
  /** One entry per site process, in start order. */
  readonly siteProcessPeakRssBytes: (number | null)[];
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
  private coordinatorPeakRss: number | null = null;
  /** Peak RSS per site process (by process name): the largest any of its sites reported. */
  private readonly siteProcessPeakRss = new Map<string, number | null>();
  private settled = false;
  private settle!: { resolve: (s: FederationOutcome['status']) => void; reject: (e: Error) => void };

  constructor(private readonly o: FederationOptions) {}

  async run(): Promise<FederationOutcome> {
    const ended = new Promise<FederationOutcome['status']>((resolve, reject) => (this.settle = { resolve, reject }));
    const onAbort = (): void => this.end('interrupted');
    this.o.signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => this.fail(new SimulationError('timeout', 'SIMULATION_TIMEOUT', `simulation exceeded ${this.o.timeoutMs} ms`)), this.o.timeoutMs);
    try {
      if (this.o.signal?.aborted) this.end('interrupted');
      else this.startCoordinator();
      const status = await ended;
      return { status, history: await this.history(), sites: this.sites, personalized: this.personalized, dpSgd: this.dpSgd, memory: this.memory() };
    } finally {
      clearTimeout(timer);
      this.o.signal?.removeEventListener('abort', onAbort);
      await Promise.all(this.children.map((c) => c.stop(STOP_GRACE_MS)));
    }
  }

  private memory(): FederationMemory {
    return { coordinatorPeakRssBytes: this.coordinatorPeakRss, sitesPerProcess: this.o.job.sitesPerProcess, siteProcessPeakRssBytes: [...this.siteProcessPeakRss.values()] };
  }

  private end(status: FederationOutcome['status']): void {
    if (this.settled) return;
    this.settled = true;
    this.settle.resolve(status);
  }

  /** Ends the run with `err` (the first failure wins; later ones are consequences, e.g. the failed child's exit). */
  private fail(err: SimulationError): void {
    if (this.settled) return;
    this.settled = true;
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
      if (code !== 0) this.fail(childFailure(child.name, `exited with code ${code}\n${child.stderrTail()}`, undefined));
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
      if (this.coordinatorEnd === null) return this.fail(childFailure('coordinator', `exited without finishing its rounds\n${coordinator.stderrTail()}`, undefined));
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
        return this.startSites(e.url);
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
        this.coordinatorPeakRss = e.peakRssBytes ?? null;
        return;
      case 'stopped':
        this.coordinatorEnd = 'stopped';
        return log(`coordinator stopped after ${e.rounds} round(s)`);
      case 'error':
        return this.fail(childFailure('coordinator', e.message, e.code));
      default: {
        const never: never = e;
        throw new Error(`unhandled coordinator event ${JSON.stringify(never)}`);
      }
    }
  }

  /** One process per `sitesPerProcess` sites, in the job's order; a process is named after its site(s). */
  private startSites(url: string): void {
    const ids = this.o.job.sites.map((s) => s.id);
    const per = this.o.job.sitesPerProcess;
    for (let i = 0; i < ids.length; i += per) {
      const group = ids.slice(i, i + per);
      const name = group.length === 1 ? group[0] : `sites ${group[0]}..${group[group.length - 1]}`;
      this.siteProcessPeakRss.set(name, null);
      const child = spawnTs(name, new URL('./site-process.ts', import.meta.url), [this.o.jobFile, ...group], siteEventSchema, {
        onEvent: (e) => this.onSiteEvent(name, e),
        onInvalid: this.invalid(name),
      }, { ...process.env, FEDSFDA_COORDINATOR_URL: url });
      this.siteExits.push(child.exited);
      this.watch(child, () => {});
    }
  }

  private onSiteProgress(siteId: string, p: SiteProgressEvent): void {
    const log = this.o.log;
    // A site's own 'failed' (its fit or evaluation threw) is not printed: the site sends it to the coordinator as an
    // error reply, and the coordinator's siteFailed event prints it once, with its typed code.
    if (p.type === 'failed') return;
    if (p.type === 'dp-fit') {
      log(`${siteId}: round ${p.round}: update norm ${p.updateNorm.toFixed(4)} clipped to ${p.clip}, noise share sigma ${p.siteSigma.toFixed(1)} steps; own epsilon so far ${p.epsilon.toFixed(3)} (delta ${p.delta})`);
    } else if (p.type === 'dp-sgd-fit') {
      this.dpSgd.set(siteId, { epsilon: p.epsilon, delta: p.delta, steps: p.steps, noiseMultiplier: p.noiseMultiplier });
      log(`${siteId}: round ${p.round}: DP-SGD ${p.steps} noised steps so far (noise multiplier ${p.noiseMultiplier.toFixed(3)}, ${(100 * p.clippedFraction).toFixed(0)}% of slice gradients clipped); own epsilon so far ${p.epsilon.toFixed(3)} (delta ${p.delta})`);
    }
  }

  private onSiteEvent(processName: string, e: SiteEvent): void {
    const log = this.o.log;
    switch (e.event) {
      case 'ready': {
        const siteId = e.siteId;
        this.sites.set(siteId, e);
        const total = e.classHistogram.reduce((a, b) => a + b, 0);
        const shares = e.classHistogram.map((h, c) => `c${c} ${((100 * h) / total).toFixed(1)}%`).join(' ');
        return log(`${siteId}: ready on backend ${e.backend}, ${e.trainCases} cases / ${e.trainSlices} training and ${e.valSlices} validation slices; training pixels by class: ${shares}`);
      }
      case 'progress':
        return this.onSiteProgress(e.siteId, e.progress);
      case 'personalized':
        this.personalized.set(e.siteId, e.metrics);
        return log(`${e.siteId}: fine-tuned locally for ${this.o.personalizeEpochs} epoch(s): validation Dice ${metricValue(e.metrics, EVAL_METRIC.dice)?.toFixed(3) ?? 'n/a'}`);
      case 'done': {
        const peak = e.processPeakRssBytes;
        if (peak !== undefined) this.siteProcessPeakRss.set(processName, Math.max(peak, this.siteProcessPeakRss.get(processName) ?? 0));
        return;
      }
      case 'error':
        return this.fail(childFailure(e.siteId ?? processName, e.message, e.code));
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
