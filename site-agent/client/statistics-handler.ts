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

type StatsReply = MessageOf<'statsRes'>['reply'];

/**
 * Handle one `statsIns`. Never throws: a failure is a `{ok:false}` reply. The same request re-issued on a new
 * connection (the site dropped while computing) is answered from the first computation, not computed again.
 */
export async function handleStatisticsInstruction(ch: SecureChannel, m: MessageOf<'statsIns'>, ctx: StatisticsContext): Promise<void> {
  const instruction = JSON.stringify([m.round, m.name, m.config, m.modelId]);
  const answers = ctx.secagg.statisticsAnswers;
  let known = answers.get(m.sessionId);
  if (!ctx.statistics) {
    // The hook is optional: a trainer without it declines the request as data on the wire, like any unsupported request.
    known = { instruction, answer: Promise.resolve({ ok: false, error: { code: 'bad_request', reason: 'this site computes no federated statistics (its LocalTrainer has no statistics hook)' } }) };
  } else if (known && known.instruction !== instruction) {
    known = { instruction, answer: Promise.resolve({ ok: false, error: { code: 'bad_request', reason: `statistics session ${m.sessionId} was already asked for other statistics` } }) };
  } else if (!known) {
    let global: WeightSet;
    try {
      // Read on this connection and not kept as an answer: a download cut by a drop is simply asked for again.
      global = await ctx.getModel(m.modelId, m.modelIncluded);
    } catch (e) {
      known = { instruction, answer: Promise.resolve({ ok: false, error: { code: 'model_missing', reason: ((e as Error)?.message ?? String(e)).slice(0, 480) } }) };
    }
    if (!known) {
      known = { instruction, answer: computeStatistics(global!, m, { ...ctx, statistics: ctx.statistics }) };
      remember(answers, m.sessionId, known);
    }
  }
  const reply = await known.answer;
  if (!ch.isClosed) ch.send({ v: PROTOCOL_VERSION, type: 'statsRes', sessionId: m.sessionId, reply });
}

async function computeStatistics(global: WeightSet, m: MessageOf<'statsIns'>, ctx: StatisticsContext & { statistics: NonNullable<StatisticsContext['statistics']> }): Promise<StatsReply> {
  try {
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
    return { ok: true, entries };
  } catch (e) {
    return { ok: false, error: { code: 'trainer_failed', reason: ((e as Error)?.message ?? String(e)).slice(0, 480) } };
  }
}
