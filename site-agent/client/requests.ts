/**
 * The plain requests a site serves: `fitIns` (train through the one fit path, then upload the update as a chunked,
 * resumable transfer) and `evaluateIns` (score the model on the local validation split). Failures are replies with
 * a code, never exceptions escaping the session.
 */
import { PROTOCOL_VERSION, type MessageOf, type SecureChannel, type WeightSet } from '../../protocol/index.ts';
import { encodedUpdate, finiteMetrics, trainOnce, type TrainedFit } from './fit-path.ts';
import { getModel, safeSend, type SessionContext } from './site-session.ts';

export async function handleFit(ch: SecureChannel, m: MessageOf<'fitIns'>, ctx: SessionContext): Promise<void> {
  let global: WeightSet;
  try {
    global = await getModel(ch, ctx, m.modelId, m.modelIncluded);
  } catch (e) {
    if (ch.isClosed) return;
    safeSend(ch, { v: PROTOCOL_VERSION, type: 'fitRes', round: m.round, reply: { ok: false, error: { code: 'model_missing', reason: (e as Error).message.slice(0, 300) } } });
    return;
  }
  let trained: TrainedFit;
  let reused: boolean;
  try {
    ({ trained, reused } = await trainOnce(ctx, m.round, m.modelId, global, m.config));
  } catch (e) {
    ctx.logger.warn({ code: 'trainer_failed', round: m.round, err: (e as Error).message }, 'local training failed');
    ctx.onProgress({ type: 'failed', round: m.round, stage: 'fit', reason: (e as Error).message });
    safeSend(ch, { v: PROTOCOL_VERSION, type: 'fitRes', round: m.round, reply: { ok: false, error: { code: 'trainer_failed', reason: (e as Error).message.slice(0, 300) } } });
    return;
  }
  if (ch.isClosed) return; // the result stays cached; a re-issued request after reconnecting will send it
  const { numExamples, metrics } = trained.output;
  const { updateId, bytes } = encodedUpdate(ctx, m.round, trained);
  safeSend(ch, { v: PROTOCOL_VERSION, type: 'fitRes', round: m.round, reply: { ok: true, numExamples, metrics, updateId } });
  // Same updateId on a re-send: the coordinator's per-site store answers with the first chunk it is missing.
  const { resumedFrom } = await ch.sendBlob(updateId, bytes);
  ctx.onProgress({ type: 'fit', round: m.round, numExamples, metrics, updateBytes: bytes.length, resumedFrom, reused });
}

export async function handleEvaluate(ch: SecureChannel, m: MessageOf<'evaluateIns'>, ctx: SessionContext): Promise<void> {
  try {
    const global = await getModel(ch, ctx, m.modelId, m.modelIncluded);
    const out = await ctx.trainer.evaluate(global, m.config);
    if (!Number.isInteger(out.numExamples) || out.numExamples < 0) throw new Error(`trainer returned numExamples ${out.numExamples}`);
    const metrics = finiteMetrics(out.metrics);
    safeSend(ch, { v: PROTOCOL_VERSION, type: 'evaluateRes', round: m.round, reply: { ok: true, numExamples: out.numExamples, metrics } });
    ctx.onProgress({ type: 'evaluate', round: m.round, numExamples: out.numExamples, metrics });
  } catch (e) {
    if (ch.isClosed) return;
    ctx.logger.warn({ code: 'evaluation_failed', round: m.round, err: (e as Error).message }, 'local evaluation failed');
    ctx.onProgress({ type: 'failed', round: m.round, stage: 'evaluate', reason: (e as Error).message });
    safeSend(ch, { v: PROTOCOL_VERSION, type: 'evaluateRes', round: m.round, reply: { ok: false, error: { code: 'trainer_failed', reason: (e as Error).message.slice(0, 300) } } });
  }
}
