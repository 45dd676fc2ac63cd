/** REST surface (express 5): dashboard, health, status, round history, Prometheus metrics. Read-only; JSON replies as data. */
import express, { type Express } from 'express';
import { DASHBOARD_HTML } from './dashboard.ts';
import type { CoordinatorMetrics } from './metrics-registry.ts';
import type { RoundRecord } from './round-history.ts';
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
}

export function createHttpApp(deps: { status(): CoordinatorStatus; history(): RoundRecord[]; metrics: CoordinatorMetrics }): Express {
  const app = express();
  app.disable('x-powered-by');
  app.get('/', (_req, res) => {
    res.type('html').send(DASHBOARD_HTML);
  });
  app.get('/health', (_req, res) => {
    res.json({ ok: true, status: 'up' });
  });
  app.get('/status', (_req, res) => {
    res.json({ ok: true, ...deps.status() });
  });
  app.get('/rounds', (_req, res) => {
    res.json({ ok: true, rounds: deps.history() });
  });
  app.get('/metrics', (_req, res) => {
    res.type('text/plain; version=0.0.4').send(deps.metrics.registry.render());
  });
  app.use((_req, res) => {
    res.status(404).json({ ok: false, error: { code: 'not_found', reason: 'no such route' } });
  });
  return app;
}
