// The reliability and benchmark scripts refuse a bad option with one typed log line and exit code 2, not a stack trace.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function runScript(script: string, args: string[]): { status: number | null; stderr: string; stdout: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', script), ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, FEDSFDA_LOG_FORMAT: 'json' }, timeout: 120_000 });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

describe('script options', () => {
  it.each([
    ['reliability-kill.ts', ['--bogus'], /Unknown option '--bogus'/],
    ['reliability-kill.ts', ['--kills', 'x'], /--kills must be a whole number >= 1, got "x"/],
    ['reliability-fuzz.ts', ['--kinds', 'tcp,foo'], /--kinds: unknown kind "foo"/],
    ['reliability-soak.ts', ['--sites', '0'], /--sites must be a whole number >= 1/],
  ])('%s %j: bad_option, exit 2, no stack trace', (script, args, message) => {
    const r = runScript(script, args);
    expect(r.status).toBe(2);
    const lines = r.stderr.trim().split('\n').filter((l) => l.trim() !== '');
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0]) as { level: number; code: string; msg: string; time: string };
    expect(line.code).toBe('bad_option');
    expect(line.level).toBe(50);
    expect(line.time).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(line.msg).toMatch(message);
    expect(r.stdout).toBe('');
  });
});
