/**
 * The REST surface: `/health` (always open), `/status`, `/rounds` (paged), `/metrics` (Prometheus), `/model` and the
 * dashboard page. With a REST token every route but `/health` needs `Authorization: Bearer <token>`. The socket.io
 * path `/socket.io/` never reaches this app: engine.io owns it (http/coordinator-server.ts).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import { dashboardHtml, type SiteActivity } from '../dashboard/index.ts';
import type { CoordinatorMetrics } from '../metrics/index.ts';
import type { RoundRecord } from '../rounds/index.ts';
import { roundsPageQuerySchema, type CoordinatorStatus } from './status.ts';

const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** Express middleware accepting only `Authorization: Bearer <token>` (digests compared, so lengths leak nothing). */
function requireBearer(token: string, onRefused: () => void): (req: Request, res: Response, next: NextFunction) => void {
  const want = sha256(token);
  return (req, res, next) => {
    const m = /^Bearer (.+)$/.exec(req.get('authorization') ?? '');
    if (m && timingSafeEqual(sha256(m[1]), want)) return next();
    onRefused();
    res.status(401).set('WWW-Authenticate', 'Bearer').json({ ok: false, error: { code: 'unauthorized', reason: 'this route needs Authorization: Bearer <REST token>' } });
  };
}

export interface HttpAppDeps {
  status(): CoordinatorStatus;
  /** Per-site activity for the dashboard (`GET /sites`). */
  sites(): SiteActivity[];
  history(): RoundRecord[];
  metrics: CoordinatorMetrics;
  restToken?: string;
  /** The current global model, encoded (protocol/tensor-codec.ts) with its content id and round. */
  model(): { round: number; id: string; bytes: Uint8Array };
}

export function createHttpApp(deps: HttpAppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.get('/', (_req, res) => {
    res.type('html').send(dashboardHtml());
  });
  app.get('/health', (_req, res) => {
    res.json({ ok: true, status: 'up' });
  });
  if (deps.restToken !== undefined) app.use(requireBearer(deps.restToken, () => deps.metrics.restUnauthorized.inc()));
  app.get('/status', (_req, res) => {
    res.json({ ok: true, ...deps.status() });
  });
  app.get('/sites', (_req, res) => {
    res.json({ ok: true, sites: deps.sites() });
  });
  app.get('/rounds', (req, res) => {
    const q = roundsPageQuerySchema.safeParse(req.query);
    if (!q.success) {
      res.status(400).json({ ok: false, error: { code: 'bad_request', reason: q.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') } });
      return;
    }
    const all = deps.history();
    const { offset, limit } = q.data;
    const rounds = all.slice(offset, offset + limit);
    res.json({ ok: true, rounds, total: all.length, offset, limit, nextOffset: offset + rounds.length < all.length ? offset + rounds.length : null });
  });
  app.get('/metrics', (_req, res, next) => {
    deps.metrics.registry.metrics().then((text) => res.type(deps.metrics.registry.contentType).send(text), next);
  });
  // The global model is the consortium's asset: served only behind the token, never on an open REST surface.
  app.get('/model', (_req, res) => {
    if (deps.restToken === undefined) {
      res.status(404).json({ ok: false, error: { code: 'disabled', reason: 'model download needs a REST token (FEDSFDA_REST_TOKEN)' } });
      return;
    }
    const m = deps.model();
    res
      .type('application/octet-stream')
      .set({ 'X-Fedsfda-Round': String(m.round), 'X-Fedsfda-Model-Id': m.id, 'Content-Disposition': 'attachment; filename="global-weights.fsws"' })
      .send(Buffer.from(m.bytes.buffer, m.bytes.byteOffset, m.bytes.byteLength));
  });
  app.use((_req, res) => {
    res.status(404).json({ ok: false, error: { code: 'not_found', reason: 'no such route' } });
  });
  return app;
}
