import { describe, expect, it } from 'vitest';
import type { Logger } from '../../protocol/common/index.ts';
import { Enrollment, encodedSize, generateIdentity } from '../../protocol/index.ts';
import { resolveOptions } from '../coordinator-options.ts';
import { BUDGET_SLACK_BYTES, defaultSiteBytesPerRound, SiteByteBudget } from './byte-budget.ts';

function recorder() {
  const lines: { level: string; obj: Record<string, unknown> }[] = [];
  const logger: Logger = {
    debug: (obj) => void lines.push({ level: 'debug', obj: obj as Record<string, unknown> }),
    info: (obj) => void lines.push({ level: 'info', obj: obj as Record<string, unknown> }),
    warn: (obj) => void lines.push({ level: 'warn', obj: obj as Record<string, unknown> }),
    error: (obj) => void lines.push({ level: 'error', obj: obj as Record<string, unknown> }),
    child: () => logger,
  };
  let refusals = 0;
  return { lines, logger, onRefused: () => void refusals++, refusals: () => refusals };
}

describe('SiteByteBudget', () => {
  it('counts envelopes per site up to the budget and refuses the one that would cross it', () => {
    const r = recorder();
    const budget = new SiteByteBudget(1000, r);
    budget.newPeriod(() => 'round 1');
    expect(budget.receive('a', 600)).toBe(true);
    expect(budget.receive('b', 900)).toBe(true); // sites are counted apart
    expect(budget.receive('a', 400)).toBe(true); // exactly the budget is allowed
    expect(budget.usedBy('a')).toBe(1000);
    expect(budget.receive('a', 1)).toBe(false);
    expect(budget.usedBy('a')).toBe(1000); // a refused envelope is not counted as received
    expect(budget.isRefused('a')).toBe(true);
    expect(budget.isRefused('b')).toBe(false);
    expect(r.refusals()).toBe(1);
  });

  it('keeps a refused site refused for the rest of the round, logging it once and counting every refusal', () => {
    const r = recorder();
    const budget = new SiteByteBudget(100, r);
    budget.newPeriod(() => 'round 3');
    expect(budget.receive('a', 101)).toBe(false);
    expect(budget.receive('a', 1)).toBe(false); // even a small one, this round
    expect(budget.admitTransfer('a', 1)).toBe(false);
    expect(r.refusals()).toBe(3);
    const warned = r.lines.filter((l) => l.level === 'warn');
    expect(warned).toEqual([{ level: 'warn', obj: expect.objectContaining({ code: 'byte_budget', siteId: 'a', period: 'round 3', bytes: 101, received: 0, budget: 100, kind: 'envelope' }) }]);
    expect(budget.reason('a')).toContain('round 3');
    budget.receive('b', 40);
    expect(budget.snapshot()).toEqual({ perRoundBytes: 100, period: 'round 3', sites: [{ siteId: 'a', received: 0, refused: true }, { siteId: 'b', received: 40, refused: false }] });
    budget.newPeriod(() => 'round 4');
    expect(budget.snapshot()).toEqual({ perRoundBytes: 100, period: 'round 4', sites: [] });
  });

  it('checks a transfer announcement against what is left without counting it', () => {
    const r = recorder();
    const budget = new SiteByteBudget(1000, r);
    budget.newPeriod(() => 'round 1');
    budget.receive('a', 300);
    expect(budget.admitTransfer('a', 700)).toBe(true);
    expect(budget.usedBy('a')).toBe(300); // its chunks are counted as they arrive
    expect(budget.admitTransfer('a', 701)).toBe(false);
    expect(r.lines.find((l) => l.level === 'warn')?.obj).toMatchObject({ code: 'byte_budget', kind: 'transfer', bytes: 1001, attempted: 701 });
  });

  it('starts every site from 0 in a new round, and reports the last round\'s peak at debug level', () => {
    const r = recorder();
    const budget = new SiteByteBudget(100, r);
    budget.newPeriod(() => 'round 1');
    budget.receive('a', 40);
    budget.receive('b', 90);
    budget.receive('b', 20); // refused
    budget.newPeriod(() => 'round 2');
    expect(budget.isRefused('b')).toBe(false);
    expect(budget.usedBy('b')).toBe(0);
    expect(budget.receive('b', 100)).toBe(true);
    expect(r.lines.find((l) => l.obj.code === 'byte_budget_usage')).toEqual({
      level: 'debug',
      obj: expect.objectContaining({ period: 'round 1', peakSiteId: 'b', peakBytes: 90, sites: 2, budget: 100 }),
    });
  });

  it('charges bytes that must get through (a reconnecting site\'s ready) without refusing them', () => {
    const r = recorder();
    const budget = new SiteByteBudget(10, r);
    budget.newPeriod(() => 'round 1');
    budget.charge('a', 50);
    expect(budget.isRefused('a')).toBe(false);
    expect(budget.receive('a', 1)).toBe(false);
  });

  it('defaults to four models plus 16 MiB', () => {
    expect(defaultSiteBytesPerRound(0)).toBe(BUDGET_SLACK_BYTES);
    expect(defaultSiteBytesPerRound(7_719_107)).toBe(4 * 7_719_107 + 16 * 1024 * 1024);
  });
});

describe('limits.maxSiteBytesPerRound', () => {
  const base = { identity: generateIdentity(), enrollment: new Enrollment(), initialWeights: [{ name: 'w', shape: [1000], data: new Float32Array(1000) }], rounds: 1 };
  const model = encodedSize(base.initialWeights);

  it('defaults to four encoded models plus 16 MiB', () => {
    expect(resolveOptions(base).maxSiteBytesPerRound).toBe(4 * model + BUDGET_SLACK_BYTES);
  });

  it('is refused before the run when one update could not fit it', () => {
    expect(resolveOptions({ ...base, limits: { maxSiteBytesPerRound: model } }).maxSiteBytesPerRound).toBe(model);
    expect(() => resolveOptions({ ...base, limits: { maxSiteBytesPerRound: model - 1 } })).toThrow(/maxSiteBytesPerRound must be an integer of at least/);
  });
});
