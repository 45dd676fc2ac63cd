import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { describeFirstIssue } from './index.ts';

const schema = z.object({ sites: z.array(z.object({ gain: z.number() }).strict()), name: z.string() }).strict();
const errorOf = (value: unknown): z.ZodError => {
  const r = schema.safeParse(value);
  if (r.success) throw new Error('expected a refusal');
  return r.error;
};

describe('describeFirstIssue', () => {
  it('joins keys and array indices with dots and reports the first issue only', () => {
    const e = errorOf({ sites: [{ gain: 1 }, { gain: 'x' }] });
    expect(e.issues.length).toBeGreaterThan(1);
    expect(describeFirstIssue(e)).toBe('sites.1.gain: Invalid input: expected number, received string');
  });

  it('names an empty path (root) unless told otherwise, and puts the prefix in front of the path', () => {
    const e = errorOf(null);
    expect(describeFirstIssue(e)).toBe('(root): Invalid input: expected object, received null');
    expect(describeFirstIssue(e, { root: '' })).toBe(': Invalid input: expected object, received null');
    expect(describeFirstIssue(e, { prefix: 'config.', root: '' })).toBe('config.: Invalid input: expected object, received null');
    expect(describeFirstIssue(errorOf({ sites: [], name: 1 }), { prefix: 'config.' })).toBe('config.name: Invalid input: expected string, received number');
  });

  it('an error without issues reads as `invalid`, or as the text given', () => {
    expect(describeFirstIssue(new z.ZodError([]))).toBe('invalid');
    expect(describeFirstIssue(new z.ZodError([]), { none: 'invalid message' })).toBe('invalid message');
  });
});
