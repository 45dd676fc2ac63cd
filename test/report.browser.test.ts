/**
 * The HTML results report in a real browser (Debian chromium, headless): offline (every request other than the
 * file itself is refused), one uPlot chart per curve with labelled axes, the tables with ∞ counts, the overlays
 * decoded. Saves a screenshot to $FEDSFDA_SCREENSHOT_DIR (default <tmp>/fedsfda-screenshots).
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoundRecord } from '../coordinator/index.ts';
import { generateSiteData } from '../simulations/phantoms/index.ts';
import { simulationCharts } from '../simulations/runner/simulation-report.ts';
import { formatDistance, overlayPng, writeReportHtml } from '../site-agent/report/index.ts';

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT_DIR = process.env.FEDSFDA_SCREENSHOT_DIR ?? join(tmpdir(), 'fedsfda-screenshots');
let browser: Browser;
let dir: string;
beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (bash .ci/system-deps does)`);
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-report-'));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});
afterAll(async () => {
  await browser?.close();
  await rm(dir, { recursive: true, force: true });
});

/** Two sites over three rounds, as the coordinator records them. */
function history(): RoundRecord[] {
  return [1, 2, 3].map((round) => ({
    round,
    meanTrainLoss: 1 / round,
    aggregated: true,
    failures: round === 2 ? [{ siteId: 'site-b', stage: 'evaluate' as const, code: 'timeout' as const, reason: 'no reply within 300000 ms' }] : [],
    evalMetrics: { dice: 0.3 * round },
    fitMetrics: {},
    startedAt: new Date(2026, 0, 1, 12, round).toISOString(),
    durationMs: 1000 * round,
    sites: ['site-a', 'site-b'].map((siteId, k) => ({
      siteId,
      numExamples: 10,
      trainLoss: 1 / round + k * 0.1,
      fitMetrics: {},
      evalNumExamples: 4,
      evalMetrics: round === 2 && k === 1 ? null : { dice: 0.25 * round + 0.05 * k, 'dice.class1': 0.2 * round, 'dice.class2': 0.3 * round, hd95: 10 / round },
    })),
  }));
}

describe('results report in headless chromium', () => {
  it('renders offline: charts with labelled axes, tables with ∞, overlays', async () => {
    const ds = generateSiteData({ seed: 3, numCases: 1, slicesPerCase: 2, size: 48, numClasses: 3, shift: 'scanner-a' });
    const px = ds.height * ds.width;
    const truth = ds.labels.subarray(0, px);
    const prediction = Uint8Array.from(truth, (c, i) => (i % ds.width > ds.width / 2 ? 0 : c)); // half the structure missed
    const file = await writeReportHtml(dir, {
      title: 'fedsfda simulate: report test',
      charts: simulationCharts(history(), ['site-a', 'site-b'], 3),
      tables: [{ caption: 'Final global model per site', head: ['site', 'Dice mean', 'HD95 mm'], rows: [['site-a', '0.750', formatDistance(3.2, 2)], ['site-b', '0.000', formatDistance(null, 4)]] }],
      overlays: [{ caption: 'site-a, case 0: image | truth | prediction', png: overlayPng({ image: ds.images.subarray(0, px), height: ds.height, width: ds.width, truth, prediction }) }],
    });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    const external: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.route('**/*', (route) => {
      if (route.request().url().startsWith('file://') || route.request().url().startsWith('data:')) return route.continue();
      external.push(route.request().url());
      return route.abort();
    });
    await page.goto(`file://${file}`);
    await page.waitForFunction(() => document.body.dataset.chartsReady !== undefined, undefined, { timeout: 120_000 });
    expect(await page.locator('.chart .uplot').count()).toBe(5); // loss, Dice, Dice class 1, Dice class 2, HD95
    expect(await page.locator('.chart .u-title').allInnerTexts()).toEqual([
      'Local training loss', 'Validation Dice (mean over classes)', 'Validation Dice, class 1', 'Validation Dice, class 2', 'Validation HD95 (finite values; ∞ counted in the tables)',
    ]);
    expect(await page.locator('table:has(caption)').first().innerText()).toContain('∞ (4)');
    expect(await page.locator('figure img').evaluate((img) => (img as HTMLImageElement).naturalWidth)).toBeGreaterThan(300);
    expect(errors).toEqual([]);
    expect(external).toEqual([]);
    await page.screenshot({ path: join(SCREENSHOT_DIR, 'report.png'), fullPage: true });
    await page.close();
  });
});
