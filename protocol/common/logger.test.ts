import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { colourAllowed, createLogger } from './logger.ts';

function sink(): { stream: Writable; lines: () => string[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  return { stream, lines: () => chunks.join('').split('\n').filter((l) => l !== '') };
}

describe('createLogger', () => {
  const saved = process.env.NO_COLOR;
  afterEach(() => {
    if (saved === undefined) delete process.env.NO_COLOR;
    else process.env.NO_COLOR = saved;
  });

  it('writes one JSON object per line with an ISO timestamp, the level, the bindings and the typed code', () => {
    const { stream, lines } = sink();
    const log = createLogger({ format: 'json', destination: stream, bindings: { component: 'coordinator' } });
    log.child({ round: 3 }).warn({ code: 'not_enrolled', siteId: 'x' }, 'refused a site');
    const [line] = lines();
    const rec = JSON.parse(line ?? '') as Record<string, unknown>;
    expect(rec).toMatchObject({ level: 40, component: 'coordinator', round: 3, code: 'not_enrolled', msg: 'refused a site' });
    expect(typeof rec.time).toBe('string');
    expect(Number.isNaN(Date.parse(rec.time as string))).toBe(false);
  });

  it('drops lines below the level', () => {
    const { stream, lines } = sink();
    const log = createLogger({ format: 'json', level: 'warn', destination: stream });
    log.info({}, 'hidden');
    log.error({ code: 'timeout' }, 'shown');
    expect(lines()).toHaveLength(1);
  });

  it('pretty lines carry the time, the level and the code, without colour when NO_COLOR is set', () => {
    process.env.NO_COLOR = '1';
    const { stream, lines } = sink();
    const log = createLogger({ format: 'pretty', destination: stream });
    log.warn({ code: 'secagg_aborted' }, 'secure round aborted');
    const text = lines().join('\n');
    expect(text).toMatch(/\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}/);
    expect(text).toContain('WARN');
    expect(text).toContain('secagg_aborted');
    expect(text).not.toContain('\u001b[');
    expect(colourAllowed(2)).toBe(false);
  });

  it('refuses a misspelt FEDSFDA_LOG_LEVEL by name', () => {
    process.env.FEDSFDA_LOG_LEVEL = 'verbose';
    try {
      expect(() => createLogger({ format: 'json' })).toThrow(/FEDSFDA_LOG_LEVEL="verbose" is not one of/);
    } finally {
      delete process.env.FEDSFDA_LOG_LEVEL;
    }
  });
});
