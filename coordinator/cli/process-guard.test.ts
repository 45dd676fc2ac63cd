import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { EXIT_INTERNAL_ERROR, installProcessGuards, isConnectionScoped } from './process-guard.ts';
import type { Logger } from '../../protocol/common/index.ts';

function recorder(): Logger & { lines: { level: string; obj: Record<string, unknown> }[] } {
  const lines: { level: string; obj: Record<string, unknown> }[] = [];
  const at = (level: string) => (obj: object) => void lines.push({ level, obj: obj as Record<string, unknown> });
  const l = { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => l };
  return l;
}

let uninstall: (() => void) | undefined;
afterEach(() => uninstall?.());

describe('process guards', () => {
  it('classifies connection-scoped errors by code', () => {
    expect(isConnectionScoped(Object.assign(new Error('x'), { code: 'ERR_HTTP_HEADERS_SENT' }))).toBe(true);
    expect(isConnectionScoped(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBe(true);
    expect(isConnectionScoped(new TypeError('undefined is not a function'))).toBe(false);
    expect(isConnectionScoped(null)).toBe(false);
  });

  it('survives a connection error (logged once with a code), exits 70 on any other uncaught error or rejection', () => {
    const log = recorder();
    const exits: number[] = [];
    const survived: string[] = [];
    const target = new EventEmitter();
    uninstall = installProcessGuards(log, { target, exit: (c) => void exits.push(c), onSurvived: (c) => void survived.push(c) });
    target.emit('uncaughtException', Object.assign(new Error('reset'), { code: 'ECONNRESET' }));
    expect(exits).toEqual([]);
    expect(survived).toEqual(['ECONNRESET']);
    expect(log.lines).toEqual([{ level: 'warn', obj: expect.objectContaining({ code: 'connection_error_survived', errCode: 'ECONNRESET' }) }]);
    target.emit('uncaughtException', new TypeError('state is broken'));
    target.emit('unhandledRejection', new Error('lost promise'));
    expect(exits).toEqual([EXIT_INTERNAL_ERROR, EXIT_INTERNAL_ERROR]);
    expect(log.lines.slice(1).map((l) => [l.level, l.obj.code])).toEqual([
      ['error', 'uncaught_exception'],
      ['error', 'unhandled_rejection'],
    ]);
  });
});
