/**
 * The coordinator's dashboard in a real browser (Debian chromium, headless, driven by playwright-core): after two
 * real rounds over socket.io on 127.0.0.1 the page shows the status, one row per round and a loss curve, with no
 * script error; with a REST token it reads the token from the URL fragment, and without it says how to open it.
 * `.ci/system-deps` installs chromium; without /usr/bin/chromium this file fails and says so.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { startCoordinator, CoordinatorHandle } from '../coordinator/start-coordinator.ts';
import { runSite } from '../site-agent/client/run-site.ts';
import { linearCoordinator, linearSites } from './support/linear-federation.ts';

const CHROMIUM = '/usr/bin/chromium';
let browser: Browser;
beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (bash .ci/system-deps does)`);
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

async function federation(extra: Partial<Parameters<typeof startCoordinator>[0]> = {}): Promise<CoordinatorHandle> {
  const sites = linearSites(['hospital-a', 'hospital-b'], 30);
  const coord = await linearCoordinator(sites, { rounds: 2, minSites: 2, ...extra });
  cleanups.push(() => coord.close());
  await Promise.all([
    ...sites.map((s) => runSite({ url: coord.url, identity: s.identity, coordinatorPublicKey: coord.publicKey, siteId: s.id, trainer: s.trainer })),
    coord.done,
  ]);
  return coord;
}

async function open(url: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage();
  cleanups.push(() => page.close());
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  await page.goto(url);
  return { page, errors };
}

describe('dashboard in headless chromium', () => {
  it('shows the finished federation: status, one row per round, a loss curve, no script errors', async () => {
    const coord = await federation();
    const { page, errors } = await open(coord.url);
    await page.waitForFunction(() => document.querySelectorAll('#rounds tr').length === 3, undefined, { timeout: 10_000 });
    const status = await page.locator('#status').innerText();
    expect(status).toMatch(/round\s+2 \/ 2/);
    expect(status).toMatch(/strategy\s+fedavg/i);
    const rows = await page.locator('#rounds tr').allInnerTexts();
    expect(rows[1]).toMatch(/^2\s+2\s+\d+\.\d{4}/); // newest first: round 2, 2 sites, its mean train loss
    expect(await page.locator('#loss path').count()).toBe(1);
    expect(await page.locator('#loss path').getAttribute('d')).toMatch(/^M[\d.]+ [\d.]+ L[\d.]+ [\d.]+$/);
    expect(errors).toEqual([]);
  });

  it('with a REST token: data only through the token in the URL fragment', async () => {
    const token = 'dashboard-test-token-0123456789';
    const coord = await federation({ restToken: token });
    const denied = await open(coord.url);
    await denied.page.waitForFunction(() => document.getElementById('status')!.textContent!.includes('unauthorized'), undefined, { timeout: 10_000 });
    expect(await denied.page.locator('#status').innerText()).toContain('/#token=');
    const allowed = await open(`${coord.url}/#token=${token}`);
    await allowed.page.waitForFunction(() => document.querySelectorAll('#rounds tr').length === 3, undefined, { timeout: 10_000 });
    expect(allowed.errors).toEqual([]);
  });
});
