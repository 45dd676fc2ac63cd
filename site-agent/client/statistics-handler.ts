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
  const send = (reply: StatsReply): void => {
    if (!ch.isClosed) ch.send({ v: PROTOCOL_VERSION, type: 'statsRes', sessionId: m.sessionId, reply });
  };
  // The hook is optional: a trainer without it declines the request as data on the wire, like any unsupported request.
  const statistics = ctx.statistics;
  if (!statistics) return send({ ok: false, error: { code: 'bad_request', reason: 'this site computes no federated statistics (its LocalTrainer has no statistics hook)' } });
  const instruction = JSON.stringify([m.round, m.name, m.config, m.modelId]);
  const answers = ctx.secagg.statisticsAnswers;
  const known = answers.get(m.sessionId);
  if (known && known.instruction !== instruction) {
    return send({ ok: false, error: { code: 'bad_request', reason: `statistics session ${m.sessionId} was already asked for other statistics` } });
  }
  let answer = known ? await known.answer : null;
  if (answer === null || answer.modelLost) {
    // First request, or the first one lost its model download with its connection: read the model on this one.
    const entry: StatisticsAnswer = { instruction, answer: answerOn(m, ctx, statistics) };
    remember(answers, m.sessionId, entry);
    answer = await entry.answer;
    if (answer.modelLost && answers.get(m.sessionId) === entry) answers.delete(m.sessionId);
  }
  send(answer.reply);
}

/** A statistics answer, and whether it failed only because the model could not be read on its connection. */
interface Answer {
  readonly reply: StatsReply;
  readonly modelLost: boolean;
}

export interface StatisticsAnswer {
  readonly instruction: string;
  readonly answer: Promise<Answer>;
}

async function answerOn(m: MessageOf<'statsIns'>, ctx: StatisticsContext, statistics: NonNullable<StatisticsContext['statistics']>): Promise<Answer> {
  let global: WeightSet;
  try {
    global = await ctx.getModel(m.modelId, m.modelIncluded);
  } catch (e) {
    return { reply: { ok: false, error: { code: 'model_missing', reason: ((e as Error)?.message ?? String(e)).slice(0, 480) } }, modelLost: true };
  }
  return { reply: await computeStatistics(global, m, ctx.secagg, statistics), modelLost: false };
}

async function computeStatistics(global: WeightSet, m: MessageOf<'statsIns'>, secagg: SiteSecAggState, statistics: NonNullable<StatisticsContext['statistics']>): Promise<StatsReply> {
  try {
    const values = await statistics(global, { name: m.name, config: m.config });
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
    remember(secagg.statistics, m.sessionId, { name: m.name, values });
    return { ok: true, entries };
  } catch (e) {
    return { ok: false, error: { code: 'trainer_failed', reason: ((e as Error)?.message ?? String(e)).slice(0, 480) } };
  }
}
