import { describe, expect, it } from 'vitest';
import { inputAdapterOptionsSchema } from './adapt-options-schema.ts';

describe('input-adapter options schema: the band search selection', () => {
  it("accepts selection 'restart-agreement' with its settings and refuses unknown selections and bad settings", () => {
    const ok = { bandPermutations: { refine: 4, selection: 'restart-agreement', agreement: { restarts: 3, sigma: 0.3, steps: 40 } } };
    expect(inputAdapterOptionsSchema.parse(ok)).toEqual(ok);
    expect(inputAdapterOptionsSchema.parse({ bandPermutations: { selection: 'guard' } })).toEqual({ bandPermutations: { selection: 'guard' } });
    for (const bad of [{ selection: 'entropy' }, { agreement: { restarts: 0 } }, { agreement: { sigma: 0 } }, { agreement: { extra: 1 } }]) {
      expect(inputAdapterOptionsSchema.safeParse({ bandPermutations: bad }).success).toBe(false);
    }
  });
});
