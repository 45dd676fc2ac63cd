/**
 * The events a simulation's child processes (coordinator-process.ts, site-process.ts) report to the parent, one JSON
 * object per stdout line. Like the wire (protocol/messages.ts): zod schemas, a discriminated union on `event`, the
 * TypeScript types inferred from them, validated when a child sends and again when the parent receives.
 */
import { z } from 'zod';
import { roundFailureSchema, roundRecordSchema } from '../../protocol/contracts/index.ts';

const message = z.object({ message: z.string() });
const siteList = z.array(z.string());

export const coordinatorEventSchema = z.discriminatedUnion('event', [
  z.object({ event: z.literal('listening'), url: z.string(), publicKey: z.string() }),
  z.object({ event: z.literal('roundStarted'), round: z.number().int(), sites: siteList }),
  z.object({ event: z.literal('siteFailed'), failure: roundFailureSchema }),
  z.object({ event: z.literal('roundCompleted'), record: roundRecordSchema }),
  z.object({ event: z.literal('sourceStats'), sites: siteList }),
  z.object({ event: z.literal('sourceStatsFailed'), ...message.shape }),
  z.object({ event: z.literal('classHistogram'), sites: siteList, heterogeneity: z.number() }),
  z.object({ event: z.literal('classHistogramFailed'), ...message.shape }),
  z.object({ event: z.literal('finished'), rounds: z.number().int() }),
  /** Stopped on purpose (SIGTERM/SIGINT from the parent): the port is closed, the rounds did not all run. */
  z.object({ event: z.literal('stopped'), rounds: z.number().int() }),
  z.object({ event: z.literal('error'), ...message.shape, code: z.string().optional() }),
]);
export type CoordinatorEvent = z.infer<typeof coordinatorEventSchema>;

/** What a site reports of its session (a subset of the client's SiteProgress: what the parent prints). */
const siteProgressSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('connected'), attempt: z.number().int() }),
  z.object({ type: z.literal('failed'), round: z.number().int(), stage: z.enum(['fit', 'evaluate']), reason: z.string() }),
  z.object({ type: z.literal('disconnected'), bytesSent: z.number(), bytesReceived: z.number() }),
  /** Distributed DP: the site's own accounting of the noise it added to one update (its audit log has the same entry). */
  z.object({
    type: z.literal('dp-fit'),
    round: z.number().int(),
    updateNorm: z.number(),
    clip: z.number(),
    siteSigma: z.number(),
    epsilon: z.number(),
    delta: z.number(),
  }),
  /** Sample-level DP-SGD: the site's own ledger after one fit. */
  z.object({
    type: z.literal('dp-sgd-fit'),
    round: z.number().int(),
    steps: z.number(),
    clippedFraction: z.number(),
    noiseMultiplier: z.number(),
    epsilon: z.number(),
    delta: z.number(),
  }),
]);
export type SiteProgressEvent = z.infer<typeof siteProgressSchema>;

export const siteEventSchema = z.discriminatedUnion('event', [
  z.object({
    event: z.literal('ready'),
    siteId: z.string(),
    backend: z.string(),
    trainSlices: z.number().int(),
    valSlices: z.number().int(),
    trainCases: z.number().int(),
    /** Training pixels per class (index = class). */
    classHistogram: z.array(z.number()),
  }),
  z.object({ event: z.literal('progress'), siteId: z.string(), progress: siteProgressSchema }),
  z.object({ event: z.literal('personalized'), siteId: z.string(), metrics: z.record(z.string(), z.number()) }),
  z.object({
    event: z.literal('done'),
    siteId: z.string(),
    lastRound: z.number().int(),
    rounds: z.array(z.number().int()),
    connections: z.number().int(),
    bytesSent: z.number(),
    bytesReceived: z.number(),
  }),
  z.object({ event: z.literal('error'), ...message.shape, code: z.string().optional() }),
]);
export type SiteEvent = z.infer<typeof siteEventSchema>;

export type ChildEventSchema = typeof coordinatorEventSchema | typeof siteEventSchema;

/** Every event line starts with this, so that the parent can tell events from a child's other output. */
export const EVENT_LINE_PREFIX = '{"event":';

/** The child side: validates, then writes one event line on stdout (a bad event is a bug: it throws). */
export function emitChildEvent<S extends ChildEventSchema>(schema: S, e: z.input<S>): void {
  const valid = schema.parse(e);
  process.stdout.write(`${JSON.stringify(valid)}\n`);
}

export type ParsedLine<T> = { kind: 'event'; event: T } | { kind: 'log'; line: string } | { kind: 'invalid'; line: string; reason: string };

/** The parent side: an event line validated against the child's schema, or a plain log line. */
export function parseChildLine<S extends ChildEventSchema>(schema: S, line: string): ParsedLine<z.infer<S>> {
  if (!line.startsWith(EVENT_LINE_PREFIX)) return { kind: 'log', line };
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch (e) {
    return { kind: 'invalid', line, reason: `not JSON (${e instanceof Error ? e.message : String(e)})` };
  }
  const r = schema.safeParse(raw);
  if (!r.success) return { kind: 'invalid', line, reason: r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ') };
  return { kind: 'event', event: r.data as z.infer<S> };
}
