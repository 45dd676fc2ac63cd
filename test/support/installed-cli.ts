/**
 * The `fedsfda` command installed as a user installs it: `npm install -g <this checkout> --prefix <prefix>` (a link to
 * the checkout; the native addon is kept when current, ~3 s), and the environment that puts it first on PATH with
 * colours off. Used by the tests that run the README's commands from a folder outside the repository.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export async function installCli(prefix: string, cwd: string, timeoutMs: number): Promise<NodeJS.ProcessEnv> {
  await new Promise<void>((resolve, reject) =>
    execFile('npm', ['install', '-g', REPO_ROOT, '--prefix', prefix, '--offline', '--no-audit', '--no-fund'], { cwd, timeout: timeoutMs }, (err, _o, stderr) =>
      err ? reject(new Error(`npm install -g: ${stderr}`)) : resolve(),
    ),
  );
  return { ...process.env, PATH: `${join(prefix, 'bin')}:${process.env.PATH ?? ''}`, NO_COLOR: '1' };
}
