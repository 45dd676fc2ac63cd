/**
 * A statistics request (`statsIns`): compute the named statistics on the given model with the trainer's statistics
 * hook, keep them for the masked run that follows (secagg-mod.ts, purpose `statistics`), and answer with their layout
 * only (names and lengths, never values).
 */
import { PROTOCOL_VERSION, type MessageOf, type SecureChannel, type WeightSet } from '../../protocol/index.ts';
import type { LocalTrainer } from './local-trainer.ts';
import { remember, type SiteSecAggState } from './secagg-mod.ts';

export interface StatisticsContext {
  readonly secagg: SiteSecAggState;
  /** The trainer's statistics hook, if it has one. */
  readonly statistics: LocalTrainer['statistics'] | undefined;
  readonly getModel: (modelId: string, included: boolean) => Promise<WeightSet>;
}

/** Handle one `statsIns`. Never throws: a failure is a `{ok:false}` reply. */
export async function handleStatisticsInstruction(ch: SecureChannel, m: MessageOf<'statsIns'>, ctx: StatisticsContext): Promise<void> {
  const send = (reply: MessageOf<'statsRes'>['reply']): void => {
    if (!ch.isClosed) ch.send({ v: PROTOCOL_VERSION, type: 'statsRes', sessionId: m.sessionId, reply });
  };
  // The hook is optional: a trainer without it declines the request as data on the wire, like any unsupported request.
  if (!ctx.statistics) {
    send({ ok: false, error: { code: 'bad_request', reason: 'this site computes no federated statistics (its LocalTrainer has no statistics hook)' } });
    return;
  }
  try {
    const global = await ctx.getModel(m.modelId, m.modelIncluded);
    const values = await ctx.statistics(global, { name: m.name, config: m.config });
    if (values === null || typeof values !== 'object') throw new Error('statistics must be a record of Float32Array');
    const entries = Object.keys(values)
      .sort()
      .map((name) => {
        const v = values[name];
        if (!(v instanceof Float32Array)) throw new Error(`statistic "${name}" is not a Float32Array`);
        if (name.length < 1 || name.length > 256) throw new Error('statistic names are 1-256 characters');
        return { name, length: v.length };
      });
    if (entries.length === 0 || entries.length > 10_000) throw new Error(`statistics must have 1-10000 entries, got ${entries.length}`);
    remember(ctx.secagg.statistics, m.sessionId, { name: m.name, values });
    send({ ok: true, entries });
  } catch (e) {
    send({ ok: false, error: { code: 'trainer_failed', reason: ((e as Error)?.message ?? String(e)).slice(0, 480) } });
  }
}
