/**
 * The coordinator's dashboard in a real browser (Debian chromium, headless, driven by playwright-core) after real
 * rounds over socket.io on 127.0.0.1: per-site panels (connected, last seen, stage, bytes, last metrics), Dice-like
 * scores and millimetre distances on separate labelled axes with every metric selectable, the round timeline with
 * secure-aggregation state, no script errors; the token only through the URL fragment. Screenshots go to
 * $FEDSFDA_SCREENSHOT_DIR (default: <tmp>/fedsfda-screenshots). `.ci/system-deps` installs chromium.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { EvalConfig } from '../protocol/messages.ts';
import type { WeightSet } from '../protocol/named-tensor.ts';
import type { startCoordinator, CoordinatorHandle } from '../coordinator/start-coordinator.ts';
import { runSite } from '../site-agent/client/run-site.ts';
import { LeastSquaresTrainer } from './support/least-squares-trainer.ts';
import { linearCoordinator, linearSites } from './support/linear-federation.ts';

const CHROMIUM = '/usr/bin/chromium';
/** A page condition is awaited this long at most: a bound for a loaded machine, not a speed target. */
const PAGE_BOUND_MS = 120_000;
export const SCREENSHOT_DIR = process.env.FEDSFDA_SCREENSHOT_DIR ?? join(tmpdir(), 'fedsfda-screenshots');

let browser: Browser;
beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (bash .ci/system-deps does)`);
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});
afterAll(async () => {
  await browser?.close();
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** The least-squares site reporting segmentation-like metrics too: a score in [0, 1] and a distance in mm. */
class SegmentationLikeTrainer extends LeastSquaresTrainer {
  override async evaluate(global: WeightSet, config: EvalConfig) {
    const r = await super.evaluate(global, config);
    const mse = r.metrics.mse;
    return { ...r, metrics: { ...r.metrics, dice: 1 / (1 + mse), 'dice.class1': 1 / (1 + 2 * mse), hd95: 10 * mse + 1, assd: 3 * mse + 0.5, infiniteDistances: 0 } };
  }
}

async function federation(ids: string[], extra: Partial<Parameters<typeof startCoordinator>[0]> = {}): Promise<CoordinatorHandle> {
  const sites = linearSites(ids, 30).map((s) => Object.assign(s, { trainer: Object.setPrototypeOf(s.trainer, SegmentationLikeTrainer.prototype) as SegmentationLikeTrainer }));
  const coord = await linearCoordinator(sites, { rounds: 2, minSites: ids.length, ...extra });
  cleanups.push(() => coord.close());
  await Promise.all([
    ...sites.map((s) => runSite({ url: coord.url, identity: s.identity, coordinatorPublicKey: coord.publicKey, siteId: s.id, trainer: s.trainer })),
    coord.done,
  ]);
  return coord;
}

async function open(url: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  cleanups.push(() => page.close());
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  await page.goto(url);
  return { page, errors };
}

describe('dashboard v2 in headless chromium', () => {
  it('per-site panels, separate labelled axes for scores and mm, selectable metrics, timeline, secure-aggregation state', async () => {
    const token = 'dashboard-test-token-0123456789';
    const ids = ['hospital-a', 'hospital-b', 'hospital-c'];
    const coord = await federation(ids, { restToken: token, secureAggregation: { clip: 8, maxExamples: 1000 } });
    const { page, errors } = await open(`${coord.url}/#token=${token}`);
    await page.waitForFunction(() => document.body.dataset.rounds === '2', undefined, { timeout: PAGE_BOUND_MS });

    // Per-site panels.
    expect(await page.locator('.site').count()).toBe(3);
    for (const id of ids) {
      const panel = page.locator(`.site[data-site="${id}"]`);
      expect(await panel.locator('.last-seen').innerText()).toMatch(/ago$/);
      expect(await panel.locator('.stage').innerText()).toMatch(/^(offline|idle|waiting)/);
      expect(await panel.locator('.bytes').innerText()).toMatch(/^[\d.]+ (KB|MB) \/ [\d.]+ (KB|MB)$/);
      expect(await panel.locator('.metrics').innerText()).toMatch(/dice 0\.\d{3}.*hd95 \d+\.\d{2} mm/);
    }

    // Scores and distances: one chart, two y axes with their own labels.
    // (uPlot draws axes on a canvas: their labels and scales are read from the chart object the page exposes.)
    const axes = await page.evaluate(() => {
      const c = (window as unknown as { fedsfdaDashboard: { evalChart: { axes: { label: string; scale: string; side: number }[]; series: { label: string; scale: string }[] } } }).fedsfdaDashboard.evalChart;
      return { axes: c.axes.map((a) => [a.label, a.scale, a.side]), series: c.series.map((s) => [s.label, s.scale]) };
    });
    expect(axes.axes).toEqual([['round', 'x', 2], ['Dice / IoU (0-1)', 'score', 3], ['distance (mm)', 'mm', 1]]);
    expect(axes.series.slice(1)).toEqual([['dice', 'score'], ['hd95 (mm)', 'mm']]);
    expect(await page.locator('#evalchart .u-legend .u-series').count()).toBe(3); // round + dice + hd95 (default)
    // Every metric is selectable: all of the sites' evaluation metrics have a box (counts like infiniteDistances do not).
    const boxes = await page.locator('#metrics input').evaluateAll((els) => els.map((e) => (e as HTMLInputElement).value));
    expect(boxes.sort()).toEqual(['assd', 'dice', 'dice.class1', 'hd95', 'mse']);
    await page.locator('#metrics input[value="assd"]').check();
    await page.locator('#metrics input[value="dice.class1"]').check();
    await page.waitForFunction(() => document.querySelectorAll('#evalchart .u-legend .u-series').length === 5, undefined, { timeout: PAGE_BOUND_MS });

    // Round timeline and secure aggregation.
    const rows = await page.locator('#timeline tr').allInnerTexts();
    expect(rows).toHaveLength(3);
    expect(rows[1]).toMatch(/^2\s/);
    expect(rows[1]).toContain('sum of 3');
    expect(await page.locator('#secagg').innerText()).toMatch(/^on: round 2 summed 3 site\(s\)/);
    expect(await page.locator('#privacy').innerText()).toMatch(/^off/); // no DP in this run
    // The per-site byte budget of the current round: the default limit (4 models + 16 MiB) and the busiest site.
    const statusText = await page.locator('#status').innerText();
    expect(statusText, statusText).toMatch(/byte budget\s+[\d.]+ MB per site per round; round \d+: (most [\w-]+ [\d.]+ (KB|MB)|nothing received)/);
    expect(errors).toEqual([]);
    await page.screenshot({ path: join(SCREENSHOT_DIR, 'dashboard.png'), fullPage: true });
  });

  // (dp) The privacy ledger's epsilon: training, statistics (none released in this run), total, as on /status.
  it('with DP-FedAvg: the training and total epsilon of the privacy ledger', async () => {
    const coord = await federation(['hospital-a', 'hospital-b', 'hospital-c'], { differentialPrivacy: { noiseMultiplier: 1.2, clip: 1 } });
    const { page, errors } = await open(coord.url);
    await page.waitForFunction(() => document.body.dataset.rounds === '2', undefined, { timeout: PAGE_BOUND_MS });
    const eps = coord.status().privacyLedger!.epsilon.toFixed(3);
    expect(await page.locator('.training-epsilon').innerText()).toMatch(new RegExp(`^${eps} \\(central, z 1\\.20, 2 / 2 rounds`));
    expect(await page.locator('.statistics-epsilon').innerText()).toBe('none released yet');
    expect(await page.locator('.total-epsilon').innerText()).toBe(`${eps} at delta 0.00001`);
    expect(errors).toEqual([]);
  });

  it('with a REST token: no data without it, and the page says how to open it', async () => {
    const token = 'dashboard-test-token-0123456789';
    const coord = await federation(['hospital-a'], { restToken: token, rounds: 1 });
    const denied = await open(coord.url);
    await denied.page.waitForFunction(() => document.getElementById('error')!.textContent!.includes('unauthorized'), undefined, { timeout: PAGE_BOUND_MS });
    expect(await denied.page.locator('#error').innerText()).toContain('/#token=');
    expect(await denied.page.locator('.site').count()).toBe(0);
  });
});
