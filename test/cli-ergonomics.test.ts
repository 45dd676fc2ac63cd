/**
 * The command line as a new user meets it, run from a directory outside the repository: `--version`, a short hint
 * (did-you-mean + `--help`) after a mistyped command instead of the whole help, required options named when missing.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMAND_GROUPS, groupsFor } from '../bin/cli.ts';

const cli = fileURLToPath(new URL('../bin/fedsfda.mjs', import.meta.url));
let cwd: string;

/** Runs the CLI in `cwd`; resolves exit code and both streams (never rejects on a non-zero exit). */
function fedsfda(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { cwd, env: { ...process.env, NO_COLOR: '1' } }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  cwd = await mkdtemp(join(tmpdir(), 'fedsfda-cli-'));
});
afterAll(async () => {
  await rm(cwd, { recursive: true, force: true });
});

describe('fedsfda command line ergonomics (outside the repository)', () => {
  it('--version prints the package version', async () => {
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    const r = await fedsfda('--version');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it('a mistyped command gets a did-you-mean and a one-line hint, not the whole help', async () => {
    const r = await fedsfda('simulat');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("unknown command 'simulat'");
    expect(r.stderr).toContain('Did you mean simulate?');
    expect(r.stderr).toContain('fedsfda --help');
    expect(r.stderr).not.toContain('Commands:');
    expect(r.stderr.trim().split('\n').length).toBeLessThanOrEqual(3);
  });

  it('a missing required option is named, with the subcommand help to run', async () => {
    const r = await fedsfda('identity', 'new');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("required option '--out <file>' not specified");
    expect(r.stderr).toContain('fedsfda identity new --help');
  });

  it('`fedsfda site` declares its required options; `fedsfda site audit` does not inherit them', async () => {
    const site = await fedsfda('site', '--url', 'https://127.0.0.1:1');
    expect(site.code).not.toBe(0);
    expect(site.stderr).toContain("required option '--identity <file>' not specified");
    const audit = await fedsfda('site', 'audit', join(cwd, 'missing.jsonl'));
    expect(audit.stderr).not.toContain('required option');
    expect(audit.stderr).toContain('missing.jsonl');
  });

  it('`fedsfda site --augment` refuses a bad option by name before anything starts', async () => {
    const req = ['site', '--url', 'https://127.0.0.1:1', '--identity', 'i.json', '--coordinator-key', 'k', '--site-id', 's', '--data', 'd'];
    const bad = await fedsfda(...req, '--augment', '{"prob":2}');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('--augment prob: Too big');
    const notJson = await fedsfda(...req, '--augment', 'gin');
    expect(notJson.stderr).toContain('--augment takes a JSON object of augmentation options, got "gin"');
    const unknown = await fedsfda(...req, '--augment', '{"gni":{}}');
    expect(unknown.stderr).toMatch(/--augment options: Unrecognized key.*gni/);
  });

  it('a failed command logs one line with timestamp, level and typed code, then the plain message, and exits 1', async () => {
    const r = await fedsfda('enroll', 'list', '--dir', join(cwd, 'nowhere'));
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    const log = JSON.parse(lines[0]) as { time: string; level: number; code: string; msg: string };
    expect(log).toMatchObject({ level: 50, code: 'not_found' });
    expect(Number.isNaN(Date.parse(log.time))).toBe(false);
    expect(log.msg).toContain('is not a consortium folder');
    expect(lines[1]).toBe(`fedsfda: [not_found] ${log.msg}`);
  });

  it('an option outside its allowed values lists them', async () => {
    const r = await fedsfda('--log-level', 'loud', '--version');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Allowed choices are trace, debug, info, warn, error, fatal, silent/);
  });
});

describe('lazy command groups (bin/cli.ts loads only the group of the command being run)', () => {
  it('each group registers exactly the top-level commands it names, and every name is in one group', async () => {
    const all: string[] = [];
    for (const g of COMMAND_GROUPS) {
      const p = new Command();
      await g.register(p);
      expect(p.commands.map((c) => c.name())).toEqual(g.names);
      all.push(...g.names);
    }
    expect(new Set(all).size).toBe(all.length);
  });

  it('picks the command past global options and their values; all groups for help or a mistyped name; none for --version', () => {
    const names = (args: string[]): string[] => groupsFor(['node', 'fedsfda', ...args]).flatMap((g) => g.names);
    expect(names(['--log-level', 'debug', 'site', '--url', 'x'])).toEqual(['site']);
    expect(names(['--log-format=json', 'enroll', 'list'])).toEqual(['consortium', 'enroll']);
    expect(names(['source-stats', '--help'])).toEqual(['adapt', 'source-stats']);
    const every = COMMAND_GROUPS.flatMap((g) => g.names);
    expect(names([])).toEqual(every);
    expect(names(['--help'])).toEqual(every);
    expect(names(['help', 'site'])).toEqual(every);
    expect(names(['simulat'])).toEqual(every);
    expect(names(['--version'])).toEqual([]);
  });
});
