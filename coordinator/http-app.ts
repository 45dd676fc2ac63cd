/**
 * REST surface (express 5): dashboard, health, status, round history, Prometheus metrics, and (with a token only)
 * the current global model as an encoded weight set (`fedsfda adapt --model` reads it). Read-only; JSON replies as
 * data. With `restToken`, everything but `/health` and the (data-free) dashboard page needs
 * `Authorization: Bearer <token>`, compared in constant time; failures are 401 with a JSON error and counted (fedsfda_rest_unauthorized_total).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import { dashboardHtml, type SiteActivity } from './dashboard/index.ts';
import type { CoordinatorMetrics } from './metrics-registry.ts';
import type { RoundRecord } from './round-history.ts';
import type { PrivacyStatus } from './strategies/dp-fedavg.ts';
import type { Stage } from './round-runner.ts';

export interface CoordinatorStatus {
  stage: Stage;
  /** Round in progress, or the last one completed. */
  round: number;
  rounds: number;
  minSites: number;
  connectedSites: string[];
  strategy: string;
  coordinatorKey: string;
  /** Differential privacy spent so far (epsilon, delta, per release) when the run is DP, else null. */
  privacy: PrivacyStatus | null;
}

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
  app.get('/rounds', (_req, res) => {
    res.json({ ok: true, rounds: deps.history() });
  });
  app.get('/metrics', (_req, res) => {
    res.type('text/plain; version=0.0.4').send(deps.metrics.registry.render());
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
