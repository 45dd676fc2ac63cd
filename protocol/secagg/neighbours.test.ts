import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { defaultDegree, neighbourGraph } from './neighbours.ts';

const ids = (n: number) => Array.from({ length: n }, (_, i) => `s${i}`);

describe('neighbour graph', () => {
  it('is complete for small n', () => {
    const g = neighbourGraph(ids(6), defaultDegree(6), nacl.randomBytes(32));
    for (const [id, nb] of g) {
      expect(nb.length).toBe(5);
      expect(nb).not.toContain(id);
    }
  });

  it('is k-regular, symmetric and logarithmic in degree for large n', () => {
    const n = 100;
    const k = defaultDegree(n);
    expect(k).toBe(14);
    const g = neighbourGraph(ids(n), k, nacl.randomBytes(32));
    for (const [id, nb] of g) {
      expect(new Set(nb).size).toBe(k);
      expect(nb).not.toContain(id);
      for (const j of nb) expect(g.get(j)).toContain(id);
    }
  });

  it('is a deterministic function of the round seed', () => {
    const seed = nacl.randomBytes(32);
    const a = neighbourGraph(ids(40), 10, seed);
    const b = neighbourGraph(ids(40), 10, seed.slice());
    const c = neighbourGraph(ids(40), 10, nacl.randomBytes(32));
    expect([...a]).toEqual([...b]);
    expect([...a]).not.toEqual([...c]);
  });

  it('refuses an odd degree below n-1', () => {
    expect(() => neighbourGraph(ids(10), 5, nacl.randomBytes(32))).toThrow(/even degree/);
  });
});
