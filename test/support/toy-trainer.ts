/**
 * The smallest trainer that exercises every path of a run, for cross-process reliability tests: least squares on
 * `linear.*` (real computation, test/support/least-squares-trainer.ts), a U-Net-shaped `head.w` passed through
 * unchanged (so the run's source statistics have a head to read their shape from), and both built-in statistics
 * (class histogram and source statistics) computed from the site's own data.
 */
import { CLASS_HISTOGRAM_REQUEST, classHistogramToVectors } from '../../protocol/class-histogram-vectors.ts';
import type { WeightSet } from '../../protocol/named-tensor.ts';
import type { SourceStats } from '../../protocol/contracts/index.ts';
import { SOURCE_STATS_REQUEST, sourceStatsToVectors } from '../../protocol/source-stats-vectors.ts';
import type { EvalConfig, FitConfig, LocalTrainer, StatisticsRequest } from '../../site-agent/client/local-trainer.ts';
import { LeastSquaresTrainer, linearWeights, makeLinearData } from './least-squares-trainer.ts';

/** What a toy site process is started with (test/support/toy-site-process.ts, one JSON argument). */
export interface ToySiteArgs {
  url: string;
  coordinatorKey: string;
  siteId: string;
  identityFile: string;
  seed: number;
  maxAttempts?: number;
  giveUpAfterMs?: number;
  initialDelayMs?: number;
  maxDelayMs?: number;
  failFit?: boolean;
  /** In this round, take `slowMs` before returning the update. */
  slowInRound?: number;
  slowMs?: number;
  /** In this round, the site process dies in the middle of training. */
  dieInRound?: number;
  /**
   * In this round, training holds the event loop for `blockMs` (default 3000) without yielding, as a native engine's
   * synchronous step does on a loaded machine: no heartbeat is answered meanwhile.
   */
  blockInRound?: number;
  blockMs?: number;
  /** The first statistics computation holds the event loop for `blockMs` the same way. */
  blockStatistics?: boolean;
  ca?: string;
}

export const TOY_LATENT = 2;
export const TOY_CLASSES = 2;

/** The toy global model: linear.w [3], linear.b [1], head.w [1, 1, latent, classes]. */
export function toyInitialWeights(): WeightSet {
  return [
    ...linearWeights(new Float32Array(3), 0),
    { name: 'head.w', shape: [1, 1, TOY_LATENT, TOY_CLASSES], data: new Float32Array(TOY_LATENT * TOY_CLASSES).fill(0.25) },
  ];
}

/** Hold the event loop for `ms` of wall time: the fault under test, not a wait for something. */
function holdEventLoop(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    /* busy, on purpose */
  }
}

export interface ToyTrainerOptions extends Pick<ToySiteArgs, 'slowInRound' | 'slowMs' | 'dieInRound' | 'blockInRound' | 'blockMs' | 'blockStatistics'> {
  /** Every fit throws (a site whose training is broken). */
  failFit?: boolean;
  /** Examples of this site (default 20). */
  examples?: number;
}

export class ToyTrainer implements LocalTrainer {
  private readonly ls: LeastSquaresTrainer;

  constructor(
    readonly seed: number,
    private readonly opts: ToyTrainerOptions = {},
  ) {
    this.ls = new LeastSquaresTrainer(makeLinearData(seed, opts.examples ?? 20, 3, [1, -2, 0.5], 0.3), 3);
  }

  async fit(global: WeightSet, config: FitConfig) {
    if (this.opts.failFit) throw new Error('this toy site is configured to fail every fit');
    if (this.opts.dieInRound === config.round) process.exit(3);
    if (this.opts.slowInRound === config.round) await new Promise((r) => setTimeout(r, this.opts.slowMs ?? 10_000));
    if (this.opts.blockInRound === config.round) holdEventLoop(this.opts.blockMs ?? 3000);
    const out = await this.ls.fit(global.filter((t) => t.name.startsWith('linear.')), config);
    return { ...out, weights: [...out.weights, ...global.filter((t) => !t.name.startsWith('linear.'))] };
  }

  async evaluate(global: WeightSet, config: EvalConfig) {
    const out = await this.ls.evaluate(global.filter((t) => t.name.startsWith('linear.')), config);
    return { numExamples: out.numExamples, metrics: { mse: out.metrics.mse } };
  }

  /** Pixels per class: "class 1" are the examples with y > 0. */
  private pixels(): number[] {
    const { y } = this.ls.data;
    const positive = y.filter((v) => v > 0).length;
    return [y.length - positive, positive];
  }

  private statisticsBlocked = false;

  statistics(_global: WeightSet, request: StatisticsRequest): Record<string, Float32Array> {
    if (this.opts.blockStatistics && !this.statisticsBlocked) {
      this.statisticsBlocked = true;
      holdEventLoop(this.opts.blockMs ?? 3000);
    }
    const scale = Number(request.config.scale ?? 1);
    if (request.name === CLASS_HISTOGRAM_REQUEST) return classHistogramToVectors(this.pixels(), scale);
    if (request.name !== SOURCE_STATS_REQUEST) throw new Error(`unknown statistics request ${request.name}`);
    const { x, n, d } = this.ls.data;
    const px = this.pixels();
    // Latent features = the first TOY_LATENT inputs; class moments over the examples of each class.
    const moments = (k: number) => {
      const sum = new Array<number>(TOY_LATENT).fill(0);
      const sumOuter = new Array<number>(TOY_LATENT * TOY_LATENT).fill(0);
      let count = 0;
      for (let i = 0; i < n; i++) {
        if ((this.ls.data.y[i] > 0 ? 1 : 0) !== k) continue;
        count++;
        for (let a = 0; a < TOY_LATENT; a++) {
          sum[a] += x[i * d + a];
          for (let b = 0; b < TOY_LATENT; b++) sumOuter[a * TOY_LATENT + b] += x[i * d + a] * x[i * d + b];
        }
      }
      return { count, sum, sumOuter };
    };
    const stats: SourceStats = {
      kind: 'fedsfda-source-stats',
      version: 1,
      numClasses: TOY_CLASSES,
      latentDim: TOY_LATENT,
      confidence: Number(request.config.confidence ?? 0.97),
      numSites: 1,
      bn: { 'toy.bn': { count: n, sum: [0], sumSq: [n] } },
      classes: [0, 1].map((k) => ({ labelCount: px[k], confident: moments(k), labelled: moments(k) })),
    };
    return sourceStatsToVectors(stats, scale);
  }
}
