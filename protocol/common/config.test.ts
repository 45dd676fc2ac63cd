import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConfigError, formatPath, parseJsonText, suggestClosest, validateConfig } from './config.ts';

const schema = z
  .object({
    name: z.string(),
    training: z
      .object({
        rounds: z.number().int().min(1),
        optimizer: z.enum(['sgd', 'adam']).default('adam'),
        secureAggregation: z.object({ clip: z.number() }).strict().optional(),
      })
      .strict(),
    sites: z.array(z.object({ id: z.string(), shift: z.union([z.enum(['none', 'mr-to-ct', 'ct-to-mr']), z.object({ gamma: z.number() }).strict()]) }).strict()),
    partition: z
      .discriminatedUnion('kind', [z.object({ kind: z.literal('dirichlet'), alpha: z.number() }).strict(), z.object({ kind: z.literal('quantity') }).strict()])
      .optional(),
  })
  .strict();

function issuesOf(text: string): ConfigError {
  try {
    validateConfig(schema, parseJsonText(text, 'cfg.json'), 'cfg.json', text);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

const good = { name: 'x', training: { rounds: 2 }, sites: [{ id: 'a', shift: 'none' }] };

describe('strict configuration files', () => {
  it('accepts a valid file and applies defaults', () => {
    expect(validateConfig(schema, good, 'cfg.json').training.optimizer).toBe('adam');
  });

  it('JSON syntax errors give line and column and say what was expected', () => {
    const text = '{\n  "name": "x",\n  "training": {"rounds": 2,},\n}';
    expect(() => parseJsonText(text, 'cfg.json')).toThrow(/^cfg\.json:3:28: \(root\): invalid JSON: expected a property name in double quotes \(a trailing comma\?\)$/);
    // An unquoted value: V8 reports no position at all for this one.
    expect(() => parseJsonText('{\n  "a": yes\n}', 'f.json')).toThrow(/^f\.json:2:8: .*unexpected character/);
    expect(() => parseJsonText('', 'f.json')).toThrow(/f\.json:1:1: .*invalid JSON/);
    expect(() => parseJsonText('{"a": 1', 'f.json')).toThrow(/f\.json:1:8: .*expected '}'/);
    const e = (() => {
      try {
        parseJsonText('[1]]', 'f.json');
      } catch (err) {
        return err as ConfigError;
      }
    })();
    expect(e?.code).toBe('BAD_CONFIG');
    expect(e?.issues[0]).toMatchObject({ line: 1, column: 4 });
  });

  it('an unknown key is an error naming the key, its JSON path, its position and the closest known key', () => {
    const text = JSON.stringify({ ...good, training: { rounds: 2, secureAgregation: { clip: 8 } } }, null, 2);
    const e = issuesOf(text);
    expect(e.issues).toHaveLength(1);
    expect(e.issues[0].path).toEqual(['training', 'secureAgregation']);
    expect(e.message).toBe('cfg.json:5:5: training.secureAgregation: unknown key (did you mean "secureAggregation"?)');
  });

  it('an unknown key with no close match lists the known keys; nested in arrays the path has indices', () => {
    const e = issuesOf(JSON.stringify({ ...good, sites: [{ id: 'a', shift: 'none' }, { id: 'b', shift: 'none', zzzzzzzz: 1 }] }));
    expect(e.message).toContain('sites[1].zzzzzzzz: unknown key (known keys: id, shift)');
  });

  it('enum errors list the allowed values and suggest the closest, also inside a union with an object form', () => {
    const e = issuesOf(JSON.stringify({ ...good, training: { rounds: 2, optimizer: 'adm' }, sites: [{ id: 'a', shift: 'mr-to-cx' }] }));
    const msgs = e.issues.map((i) => `${formatPath(i.path)}: ${i.message}`);
    expect(msgs).toContain('training.optimizer: "adm" is not one of: sgd, adam (did you mean "adam"?)');
    expect(msgs).toContain('sites[0].shift: "mr-to-cx" is not one of: none, mr-to-ct, ct-to-mr (did you mean "mr-to-ct"?)');
  });

  it('a union reports the branch the author meant (an object shift with a wrong field)', () => {
    const e = issuesOf(JSON.stringify({ ...good, sites: [{ id: 'a', shift: { gamma: 'high' } }] }));
    expect(e.issues.map((i) => formatPath(i.path))).toEqual(['sites[0].shift.gamma']);
    expect(e.issues[0].message).toMatch(/expected number/);
    const typo = issuesOf(JSON.stringify({ ...good, sites: [{ id: 'a', shift: { gama: 1.2 } }] }));
    expect(typo.message).toContain('sites[0].shift.gama: unknown key (did you mean "gamma"?)');
  });

  it('a discriminated union with an unknown kind lists the kinds', () => {
    const e = issuesOf(JSON.stringify({ ...good, partition: { kind: 'dirichlett', alpha: 1 } }));
    expect(e.message).toContain('partition.kind: kind must be one of: dirichlet, quantity');
  });

  it('every problem is reported, not only the first; types and ranges keep their messages', () => {
    const e = issuesOf(JSON.stringify({ name: 3, training: { rounds: 0, extra: 1 }, sites: [] }));
    expect(e.issues.map((i) => formatPath(i.path)).sort()).toEqual(['name', 'training.extra', 'training.rounds']);
  });

  it('suggests only plausible typos', () => {
    expect(suggestClosest('secureAgregation', ['rounds', 'secureAggregation'])).toBe('secureAggregation');
    expect(suggestClosest('banana', ['rounds', 'secureAggregation'])).toBeUndefined();
  });
});
