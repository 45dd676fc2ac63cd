import { describe, expect, it } from 'vitest';
import type { WeightSet } from '../../protocol/named-tensor.ts';
import { composeFit, trainOnce, type FitMod, type FitPathContext } from './fit-path.ts';
import type { LocalTrainer } from './local-trainer.ts';

const global: WeightSet = [{ name: 'w', shape: [2], data: Float32Array.of(1, 2) }];
const config = { round: 1, localEpochs: 1, lr: 0.1 };

function counting(): LocalTrainer & { calls: number } {
  const t = {
    calls: 0,
    fit: async (g: WeightSet) => {
      t.calls++;
      return { weights: g.map((x) => ({ ...x, data: x.data.map((v) => v + 1) })), numExamples: 3, metrics: { trainLoss: 0.5, nan: Number.NaN } };
    },
    evaluate: async () => ({ numExamples: 3, metrics: {} }),
  };
  return t;
}

describe('the site fit path', () => {
  it('applies mods around the trainer, the first one outermost', async () => {
    const order: string[] = [];
    const tag =
      (name: string): FitMod =>
      (next) =>
      async (g, c) => {
        order.push(`${name}>`);
        const out = await next(g, c);
        order.push(`<${name}`);
        return { ...out, weights: out.weights.map((t) => ({ ...t, data: t.data.map((v) => v * 2) })) };
      };
    const out = await composeFit(counting(), [tag('outer'), tag('inner')])(global, config);
    expect(order).toEqual(['outer>', 'inner>', '<inner', '<outer']);
    expect(Array.from(out.weights[0].data)).toEqual([8, 12]); // ((1 + 1) * 2) * 2, ((2 + 1) * 2) * 2
  });

  it('trains once per round and model, reuses the run (even in progress), and trains again after a failure', async () => {
    const trainer = counting();
    const ctx: FitPathContext = { siteId: 's', fit: composeFit(trainer), lastFit: null };
    const [a, b] = await Promise.all([trainOnce(ctx, 1, 'm1', global, config), trainOnce(ctx, 1, 'm1', global, config)]);
    expect(trainer.calls).toBe(1);
    expect([a.reused, b.reused]).toEqual([false, true]);
    expect(a.trained.output.metrics).toEqual({ trainLoss: 0.5 }); // non-finite metrics dropped
    await trainOnce(ctx, 2, 'm1', global, config);
    expect(trainer.calls).toBe(2);
    let fail = true;
    const flaky: FitPathContext = {
      siteId: 's',
      fit: async (g, c) => {
        if (fail) throw new Error('scanner offline');
        return trainer.fit(g, c);
      },
      lastFit: null,
    };
    await expect(trainOnce(flaky, 1, 'm1', global, config)).rejects.toThrow('scanner offline');
    fail = false;
    expect((await trainOnce(flaky, 1, 'm1', global, config)).reused).toBe(false);
  });
});
