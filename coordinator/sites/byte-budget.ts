/**
 * Per-site byte budget per round (issue 11): how many sealed bytes one site may send the coordinator between the
 * start of one round (or statistics round) and the next. Every envelope is counted before it is opened, and every
 * transfer announcement is checked against what is left before its buffer is allocated, so an enrolled site cannot
 * make the coordinator read, decrypt or hold more than its budget in a round. A site over budget is refused for the
 * rest of that round (its open requests fail with `byte_budget`, recorded in the round); the next round starts from 0.
 *
 * Why the default is safe for honest sites: per round a site sends one encoded update (plain fit) or one masked
 * vector of the same tensors (SecAgg+), and a few KB of replies, keys and shares; a statistics round sends one
 * masked vector of statistics. A drop and reconnect resumes an upload at its first missing chunk, so even a
 * re-sent update costs at most one more model. Four models plus 16 MiB is ~4x what an honest site needs
 * (RELIABILITY.md, "Byte budgets", has the measured peaks).
 *
 * @example
 * const budget = new SiteByteBudget(defaultSiteBytesPerRound(encodedSize(weights)), { logger, onRefused: () => m.inc() });
 * budget.newPeriod(() => 'round 1');
 * if (!budget.receive('site-a', envelope.length)) return; // dropped before it is opened
 */
import type { Logger } from '../../protocol/common/index.ts';
import { ProtocolError } from '../../protocol/index.ts';

/** Room for replies, SecAgg keys and shares, and statistics vectors, on top of the model-sized uploads. */
export const BUDGET_SLACK_BYTES = 16 * 1024 * 1024;
/** Model-sized uploads allowed per round (an honest site sends one; a reconnect may re-send part of another). */
export const BUDGET_MODELS_PER_ROUND = 4;

/** The default per-site, per-round budget for a model whose encoded WeightSet has `modelBytes` bytes. */
export function defaultSiteBytesPerRound(modelBytes: number): number {
  return BUDGET_MODELS_PER_ROUND * modelBytes + BUDGET_SLACK_BYTES;
}

/** A transfer refused by the budget before its buffer existed (the channel answers the site with its transferId). */
export class ByteBudgetExceeded extends ProtocolError {
  constructor(reason: string) {
    super('oversized', reason);
  }
}

export interface ByteBudgetHooks {
  logger: Logger;
  /** Called for every refused envelope or transfer (the Prometheus counter). */
  onRefused(): void;
}

export interface ByteBudgetSnapshot {
  readonly perRoundBytes: number;
  /** `round 3`, `statistics round ...`, or `before round 1`. */
  readonly period: string;
  /** Sites that sent anything this period (accepted or refused): accepted bytes, and whether the site is refused for the rest of it. */
  readonly sites: { siteId: string; received: number; refused: boolean }[];
}

export class SiteByteBudget {
  private label: () => string = () => 'before round 1';
  private readonly used = new Map<string, number>();
  private readonly refused = new Set<string>();

  constructor(
    /** Bytes one site may send in one round. */
    readonly perRoundBytes: number,
    private readonly hooks: ByteBudgetHooks,
  ) {}

  /** A new round (or statistics round) starts: every site starts from 0 again. The label is read when logging. */
  newPeriod(label: () => string): void {
    if (this.used.size > 0) {
      const [peakSiteId, peakBytes] = [...this.used].reduce((a, b) => (b[1] > a[1] ? b : a));
      this.hooks.logger.debug({ code: 'byte_budget_usage', period: this.label(), budget: this.perRoundBytes, peakSiteId, peakBytes, sites: this.used.size }, 'bytes received per site this round');
    }
    this.label = label;
    this.used.clear();
    this.refused.clear();
  }

  /** Bytes `siteId` has sent this round (accepted ones). */
  usedBy(siteId: string): number {
    return this.used.get(siteId) ?? 0;
  }

  /** Whether `siteId` was refused this round (its requests fail with `byte_budget` until the next round). */
  isRefused(siteId: string): boolean {
    return this.refused.has(siteId);
  }

  /** Count bytes that must get through whatever the budget (a reconnecting site's `ready`). */
  charge(siteId: string, bytes: number): void {
    this.used.set(siteId, this.usedBy(siteId) + bytes);
  }

  /**
   * An envelope of `bytes` arrived from `siteId`: counted and true, or false (drop it unopened) when it would take
   * the site over its budget or the site was already refused this round.
   */
  receive(siteId: string, bytes: number): boolean {
    if (!this.refused.has(siteId) && this.usedBy(siteId) + bytes <= this.perRoundBytes) {
      this.charge(siteId, bytes);
      return true;
    }
    this.refuse(siteId, bytes, 'envelope');
    return false;
  }

  /**
   * Whether a transfer announcing `totalBytes` fits what `siteId` has left this round. Not counted here: its chunks
   * are, as they arrive. A refusal refuses the site for the rest of the round.
   */
  admitTransfer(siteId: string, totalBytes: number): boolean {
    if (!this.refused.has(siteId) && this.usedBy(siteId) + totalBytes <= this.perRoundBytes) return true;
    this.refuse(siteId, totalBytes, 'transfer');
    return false;
  }

  /** The budget, the current period and each site's bytes this period (`GET /status`'s `byteBudget`). */
  snapshot(): ByteBudgetSnapshot {
    const ids = [...new Set([...this.used.keys(), ...this.refused])].sort();
    const sites = ids.map((siteId) => ({ siteId, received: this.usedBy(siteId), refused: this.refused.has(siteId) }));
    return { perRoundBytes: this.perRoundBytes, period: this.label(), sites };
  }

  /** Why `siteId` is refused, for the failure recorded in the round. */
  reason(siteId: string): string {
    return `over its byte budget of ${this.perRoundBytes} bytes for ${this.label()} (${this.usedBy(siteId)} received)`;
  }

  private refuse(siteId: string, attempted: number, kind: 'envelope' | 'transfer'): void {
    this.hooks.onRefused();
    if (this.refused.has(siteId)) return; // logged once per site and round
    this.refused.add(siteId);
    this.hooks.logger.warn(
      { code: 'byte_budget', siteId, period: this.label(), kind, bytes: this.usedBy(siteId) + attempted, received: this.usedBy(siteId), attempted, budget: this.perRoundBytes },
      `site refused for the rest of ${this.label()}: over its per-round byte budget`,
    );
  }
}
