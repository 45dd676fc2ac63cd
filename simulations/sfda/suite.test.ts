import { readFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../site-agent/engine/index.ts';
import { formatSuite, parseSfdaSuiteConfig, runSfdaSuite, SfdaSuiteError, suiteFilterArgs, summarizeFamilies, type SuiteReference } from './index.ts';

beforeAll(async () => {
  await initEngine();
});

const tiny = {
  kind: 'sfda-suite',
  name: 'smoke',
  seeds: [1],
  datasets: [
    {
      name: 'phantom',
      anatomy: 'phantom',
      size: 24,
      numClasses: 3,
      slicesPerCase: 4,
      sourceSites: [{ shift: 'scanner-a', numCases: 3 }, { shift: 'scanner-b', numCases: 3 }],
      sourceTestCases: 1,
      adaptCases: 2,
      testCases: 2,
      families: [
        { name: 'inversion', shift: 'mr-to-ct' },
        { name: 'mild', shift: 'scanner-c', heldOut: true },
      ],
    },
  ],
  model: { baseChannels: 8, depth: 1 },
  federated: { rounds: 4, localEpochs: 2, batchSize: 4, lr: 0.02 },
  targetSupervised: { numCases: 3, epochs: 4, lr: 0.01 },
  fewLabel: { cases: [1], options: { epochs: 1 } },
  adapt: {
    batchSize: 4,
    rows: [
      { name: 'adabn', method: 'adabn' },
      { name: 'polarity+adabn', method: 'adabn', options: { inputPolarities: [1, -1] } },
      { name: 'wide+adabn', method: 'adabn', options: { inputAdapter: { steps: 3, randomStarts: 1, wideSearch: { screen: 4, starts: 1, steps: 2 } } } },
      { name: 'adapter+tent', method: 'tent', options: { inputAdapter: { steps: 3, randomStarts: 1 }, epochs: 1 } },
      { name: 'adapter+mean-teacher', method: 'mean-teacher', options: { inputAdapter: { steps: 3, randomStarts: 1 }, epochs: 1 } },
    ],
  },
};

/**
 * The tiny suite against one in-memory source cache: `run(raw)` runs family inversion of config `raw` with the given
 * references and returns its log lines that contain `marker` (how many models or rounds were trained, not loaded).
 */
function cachedTinySuite(references: SuiteReference[], marker: string): { store: Map<string, unknown>; run: (raw: unknown) => Promise<string[]> } {
  const store = new Map<string, unknown>();
  const sourceCache = { load: async (k: string) => (store.get(k) ?? null) as never, store: async (k: string, w: unknown) => void store.set(k, w) };
  const run = async (raw: unknown): Promise<string[]> => {
    const lines: string[] = [];
    await runSfdaSuite(parseSfdaSuiteConfig(raw), { families: ['inversion'], rows: [], references, sourceCache }, (m) => lines.push(m));
    return lines.filter((l) => l.includes(marker));
  };
  return { store, run };
}

describe('sfda shift suite', () => {
  it('the shipped suite validates; duplicates, unknown methods and too many few-label cases are refused', async () => {
    const raw = JSON.parse(await readFile(new URL('../scenarios/sfda-suite.json', import.meta.url), 'utf8'));
    const cfg = parseSfdaSuiteConfig(raw);
    expect(cfg.seeds).toEqual([1, 2, 3]);
    for (const d of cfg.datasets) expect(d.families.some((f) => f.heldOut)).toBe(true);
    const bad = [
      { ...tiny, adapt: { ...tiny.adapt, rows: [tiny.adapt.rows[0], tiny.adapt.rows[0]] } },
      { ...tiny, adapt: { ...tiny.adapt, rows: [{ name: 'x', method: 'bogus' }] } },
      { ...tiny, fewLabel: { cases: [4] } },
      { ...tiny, targetSupervised: { ...tiny.targetSupervised, init: 'pretrained' } },
      { ...tiny, targetSupervised: { ...tiny.targetSupervised, decay: { epochs: 4, lr: 0.001 } } },
      { ...tiny, datasets: [{ ...tiny.datasets[0], families: [tiny.datasets[0].families[0], tiny.datasets[0].families[0]] }] },
      // A dataset's own reference training: not its own labelled cases (shared with the few-label rows), and its decay
      // must fit the merged epochs (4 from the suite).
      { ...tiny, datasets: [{ ...tiny.datasets[0], targetSupervised: { numCases: 2 } }] },
      { ...tiny, datasets: [{ ...tiny.datasets[0], targetSupervised: { decay: { epochs: 4, lr: 0.001 } } }] },
    ];
    for (const b of bad) expect(() => parseSfdaSuiteConfig(b)).toThrow(SfdaSuiteError);
  });

  it('selects rows and references from the command line; unknown names are refused', async () => {
    expect(suiteFilterArgs(['--rows', 'none', '--references', 'target-supervised'])).toEqual({ datasets: undefined, families: undefined, rows: [], references: ['target-supervised'] });
    expect(suiteFilterArgs(['--skip-references', '--rows', 'adabn,tent'])).toMatchObject({ rows: ['adabn', 'tent'], references: [] });
    expect(suiteFilterArgs(['--families', 'inversion'])).not.toHaveProperty('references');
    expect(() => suiteFilterArgs(['--references', 'supervised'])).toThrow(/unknown reference\(s\) "supervised"; use few-label, target-supervised, centralized-source or none/);
    expect(() => suiteFilterArgs(['--references', 'none', '--skip-references'])).toThrow(SfdaSuiteError);
    expect(() => suiteFilterArgs(['--rows'])).toThrow(/--rows needs a comma-separated list/);
    const cfg = parseSfdaSuiteConfig(tiny);
    await expect(runSfdaSuite(cfg, { rows: ['tent'] })).rejects.toThrow(/unknown method row\(s\) "tent"; the suite has adabn, polarity\+adabn/);
    await expect(runSfdaSuite(cfg, { families: ['gamma'] })).rejects.toThrow(SfdaSuiteError);
  });

  it('runs the supervised reference alone, from scratch with a step decay, when asked (the dataset\'s own settings over the suite\'s)', async () => {
    const cfg = parseSfdaSuiteConfig({
      ...tiny,
      datasets: [{ ...tiny.datasets[0], targetSupervised: { init: 'scratch', epochs: 2, decay: { epochs: 1, lr: 0.001 } } }],
      federated: { ...tiny.federated, rounds: 1, localEpochs: 1 },
      targetSupervised: { numCases: 2, epochs: 5, lr: 0.01 },
      fewLabel: { cases: [1] },
    });
    expect(cfg.targetSupervised.init).toBe('source');
    const r = await runSfdaSuite(cfg, { families: ['inversion'], rows: [], references: ['target-supervised'] });
    const d = r.datasets[0];
    expect(d.rows).toEqual(['source-only', 'target-supervised']);
    expect(d.cells['target-supervised'].inversion[0].notes).toEqual(['network trained from scratch on 8 labelled target slices (2 cases), 2 epochs (lr 0.01, the last 1 at 0.001)']);
    expect(Number.isNaN(d.source[0].centralized)).toBe(true);
  }, 120_000);

  it('runs every row and reference per family, with the input-adapter fit shared and held-out families apart', async () => {
    const lines: string[] = [];
    const r = await runSfdaSuite(parseSfdaSuiteConfig(tiny), {}, (m) => lines.push(m));
    const d = r.datasets[0];
    expect(d.rows).toEqual(['source-only', 'adabn', 'polarity+adabn', 'wide+adabn', 'adapter+tent', 'adapter+mean-teacher', 'few-label-1', 'target-supervised', 'centralized-source']);
    for (const row of d.rows) for (const f of ['inversion', 'mild']) expect([row, f, d.cells[row][f].length]).toEqual([row, f, 1]);
    expect(d.cells['target-supervised'].inversion[0].notes[0]).toBe('source model fine-tuned on 12 labelled target slices (3 cases), 4 epochs (lr 0.01)');
    expect(d.cells['adapter+tent'].inversion[0].notes[0]).toMatch(/^input adapter \(K=8, 3 steps\)|^input polarity/);
    expect(d.cells['few-label-1'].inversion[0].notes.some((n) => n === 'few-label mode: 4 labelled target slices')).toBe(true);
    expect(d.source).toHaveLength(1);
    expect(Number.isFinite(d.source[0].federated) && Number.isFinite(d.source[0].centralized)).toBe(true);
    // Every adapter row used the same fit (one fit per family and seed).
    const adapterNotes = ['adapter+tent', 'adapter+mean-teacher'].map((row) => d.cells[row].inversion[0].notes[0]);
    expect(adapterNotes[0]).toBe(adapterNotes[1]);
    // ... and that fit was the narrow half of the wide row's: one fit per family and seed for the three rows.
    expect(d.cells['wide+adabn'].inversion[0].notes[0].startsWith(`${adapterNotes[0]}; wide search (4 screened, 1 refined x 2 steps)`)).toBe(true);
    expect(lines.filter((l) => /phantom seed 1 inversion: input adapter \{"steps":3.* fitted in/.test(l))).toHaveLength(1);
    const text = formatSuite(r);
    expect(text).toContain('phantom: Dice (mean ± std over seeds 1), published families');
    expect(text).toContain('phantom: held-out families (never tuned on)');
    expect(text).toMatch(/in-domain source Dice, federated/);
    const sums = summarizeFamilies(d);
    expect(sums.map((s) => [s.family, s.heldOut])).toEqual([['inversion', false], ['mild', true]]);
    // The inverted target: the unadapted model fails, the polarity-checked one does not.
    const inv = sums[0];
    expect(inv.sourceOnly).toBeLessThan(0.2);
    expect(inv.best!.dice).toBeGreaterThan(inv.sourceOnly + 0.4);
  }, 600_000);

  it('augmentSelection validation: trains both recipes, keeps the one the source validation cases favour, reuses the plain cache key', async () => {
    const store = new Map<string, unknown>();
    const sourceCache = {
      load: async (k: string) => (store.get(k) ?? null) as never,
      store: async (k: string, w: unknown) => void store.set(k, w),
    };
    const lines: string[] = [];
    const fed = { ...tiny.federated, rounds: 2, localEpochs: 1 };
    const cfg = parseSfdaSuiteConfig({ ...tiny, federated: { ...fed, augment: { prob: 1 }, augmentSelection: 'validation' } });
    await runSfdaSuite(cfg, { families: ['inversion'], rows: [], references: [], sourceCache }, (m) => lines.push(m));
    expect([...store.keys()].filter((k) => k.startsWith('fed-'))).toHaveLength(2);
    const choice = lines.map((l) => /source recipe (augmented|plain) \(source validation Dice augmented ([\d.]+) vs plain ([\d.]+)\)/.exec(l)).find((m) => m !== null);
    expect(choice).toBeDefined();
    expect(choice![1]).toBe(Number(choice![2]) >= Number(choice![3]) ? 'augmented' : 'plain');
    // The plain recipe's key is the key of a suite without augmentation: its model comes from the cache, untrained.
    const again: string[] = [];
    await runSfdaSuite(parseSfdaSuiteConfig({ ...tiny, federated: fed }), { families: ['inversion'], rows: [], references: [], sourceCache }, (m) => again.push(m));
    expect(again.filter((l) => l.includes('federated source trained'))).toEqual([]);
    expect(lines.filter((l) => l.includes('federated source trained'))).toHaveLength(2);
  }, 300_000);

  it('datasets[].sourceAugment is federated.augment for that dataset (the same model and cache key)', async () => {
    const { run } = cachedTinySuite([], 'federated source trained');
    const fed = { ...tiny.federated, rounds: 1, localEpochs: 1 };
    expect(await run({ ...tiny, federated: { ...fed, augment: { prob: 1 } } })).toEqual([expect.stringContaining('(augmented)')]);
    expect(await run({ ...tiny, federated: fed, datasets: [{ ...tiny.datasets[0], sourceAugment: { prob: 1 } }] })).toEqual([]);
    expect(await run({ ...tiny, federated: fed })).toEqual([expect.not.stringContaining('(augmented)')]);
  }, 300_000);

  it("datasets[].model sets that dataset's U-Net (federated, centralized and scratch-supervised alike); the suite's model as before", async () => {
    const { store, run } = cachedTinySuite(['centralized-source', 'target-supervised'], 'federated source trained');
    const fed = { ...tiny.federated, rounds: 1, localEpochs: 1 };
    expect(await run({ ...tiny, federated: fed })).toHaveLength(1);
    // Naming the suite's own model is the same model and cache key; a wider one is a new model.
    expect(await run({ ...tiny, federated: fed, datasets: [{ ...tiny.datasets[0], model: tiny.model }] })).toEqual([]);
    expect(await run({ ...tiny, federated: fed, datasets: [{ ...tiny.datasets[0], model: { baseChannels: 12, depth: 1 } }] })).toHaveLength(1);
    const firstConvOut = [...store.entries()].filter(([k]) => k.startsWith('fed-') || k.startsWith('central-')).map(([, w]) => (w as { shape: number[] }[])[0].shape.at(-1));
    expect(firstConvOut.sort((a, b) => a! - b!)).toEqual([8, 8, 12, 12]);
    expect(() => parseSfdaSuiteConfig({ ...tiny, datasets: [{ ...tiny.datasets[0], model: { baseChannels: 1, depth: 1 } }] })).toThrow(SfdaSuiteError);
  }, 300_000);

  it('an augmentation schedule (suite-wide or per dataset) is its own recipe and cache key; absent, the keys are unchanged', async () => {
    const { run } = cachedTinySuite(['centralized-source'], 'source trained');
    const fed = { ...tiny.federated, rounds: 2, localEpochs: 1 };
    expect(await run({ ...tiny, federated: { ...fed, augment: { prob: 1 } } })).toHaveLength(2);
    expect(await run({ ...tiny, federated: { ...fed, augment: { prob: 1 }, augmentSchedule: { kind: 'mixed' } } })).toHaveLength(2);
    expect(await run({ ...tiny, federated: fed, datasets: [{ ...tiny.datasets[0], sourceAugment: { prob: 1 }, sourceAugmentSchedule: { kind: 'mixed' } }] })).toEqual([]);
    expect(await run({ ...tiny, federated: { ...fed, augment: { prob: 1 }, augmentSchedule: { kind: 'every' } } })).toHaveLength(2);
    expect(() => parseSfdaSuiteConfig({ ...tiny, federated: { ...fed, augmentSchedule: { kind: 'from-round', from: 0 } } })).toThrow(SfdaSuiteError);
    expect(() => parseSfdaSuiteConfig({ ...tiny, federated: { ...fed, augmentSchedule: { kind: 'later' } } })).toThrow(SfdaSuiteError);
  }, 300_000);

  it("datasets[].sourceTraining sets that consortium's rounds / local epochs (the centralized reference follows); absent, the suite's", async () => {
    const { run } = cachedTinySuite([], 'federated round');
    const fed = { ...tiny.federated, rounds: 1, localEpochs: 1 };
    expect(await run({ ...tiny, federated: { ...fed, rounds: 3 } })).toHaveLength(3);
    // The same recipe named per dataset is the same model (cached, no rounds run); the suite's own is another.
    expect(await run({ ...tiny, federated: fed, datasets: [{ ...tiny.datasets[0], sourceTraining: { rounds: 3 } }] })).toEqual([]);
    expect(await run({ ...tiny, federated: fed })).toHaveLength(1);
    expect(() => parseSfdaSuiteConfig({ ...tiny, datasets: [{ ...tiny.datasets[0], sourceTraining: { rounds: 0 } }] })).toThrow(SfdaSuiteError);
    expect(() => parseSfdaSuiteConfig({ ...tiny, datasets: [{ ...tiny.datasets[0], sourceTraining: { lr: 0.1 } }] })).toThrow(SfdaSuiteError);
  }, 300_000);

  it("datasets[].inputAdapter goes under every adapter row's own options (the row's win); polarity and adapter-free rows are unchanged", async () => {
    // Arrange: the dataset asks for 4 knots and 2 steps; adapter+tent asks for 3 steps and 1 random start itself.
    const raw = { ...tiny, federated: { ...tiny.federated, rounds: 1, localEpochs: 1 }, datasets: [{ ...tiny.datasets[0], inputAdapter: { knots: 4, steps: 2 } }] };
    const lines: string[] = [];
    // Act
    await runSfdaSuite(parseSfdaSuiteConfig(raw), { families: ['inversion'], rows: ['adabn', 'polarity+adabn', 'adapter+tent'], references: [] }, (m) => lines.push(m));
    // Assert: one fit with the merged options, and the polarity check's fixed setting as before.
    const fits = lines.filter((l) => l.includes(' fitted in ')).map((l) => /input adapter (\{.*\}) fitted in/.exec(l)![1]);
    expect(fits).toHaveLength(2);
    expect(fits.map((f) => JSON.parse(f))).toContainEqual({ knots: 4, steps: 3, randomStarts: 1 });
    expect(fits.map((f) => JSON.parse(f))).toContainEqual(expect.objectContaining({ knots: 2, steps: 0, starts: ['identity', 'negation'] }));
    expect(lines.find((l) => l.includes(': adapter+tent Dice'))).toMatch(/input adapter \(K=4, 3 steps\)/);
    expect(() => parseSfdaSuiteConfig({ ...tiny, datasets: [{ ...tiny.datasets[0], inputAdapter: { knots: 'many' } }] })).toThrow(SfdaSuiteError);
    expect(() => parseSfdaSuiteConfig({ ...tiny, datasets: [{ ...tiny.datasets[0], inputAdapter: { knotz: 4 } }] })).toThrow(/knotz/);
  }, 300_000);

  it('runs the centralized reference alone when asked (no labelled reference needed)', async () => {
    const cfg = parseSfdaSuiteConfig({ ...tiny, federated: { ...tiny.federated, rounds: 1, localEpochs: 1 } });
    const d = (await runSfdaSuite(cfg, { families: ['inversion'], rows: [], references: ['centralized-source'] })).datasets[0];
    expect(d.rows).toEqual(['source-only', 'centralized-source']);
    expect(d.cells['centralized-source'].inversion).toHaveLength(1);
    expect(Number.isFinite(d.cells['centralized-source'].inversion[0].dice)).toBe(true);
  }, 120_000);
});
