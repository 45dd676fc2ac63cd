/**
 * The scenarios shipped in `simulations/scenarios/`, usable by name from any directory: `fedsfda simulate --config
 * mricron.json` (or `--config mricron`) runs the embedded file when no such file exists where the command runs. A path
 * that exists always wins, so a user's own `mricron.json` in the current folder is never shadowed.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const EMBEDDED_SCENARIO_DIR = fileURLToPath(new URL('./scenarios/', import.meta.url));

/** The embedded scenario names, without `.json`, sorted. */
export function embeddedScenarioNames(): string[] {
  return readdirSync(EMBEDDED_SCENARIO_DIR)
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -'.json'.length))
    .sort();
}

/**
 * `--config VALUE` as a file path: VALUE itself when it is a file; else (no such path, or a folder such as the run
 * folder of an earlier `--out default`), for a bare name (`mricron`, `mricron.json`) or
 * the repository-relative path the README shows (`simulations/scenarios/mricron.json`), the embedded scenario of that
 * name; else VALUE unchanged (reading it then fails with ENOENT).
 */
export function resolveScenarioArg(value: string, exists: (path: string) => boolean = isFile): string {
  if (exists(value)) return value;
  const m = /^(?:\.\/)?(?:simulations\/scenarios\/)?([a-z0-9][a-z0-9-]*)(?:\.json)?$/.exec(value);
  if (!m) return value;
  const name = m[1];
  const embedded = join(EMBEDDED_SCENARIO_DIR, `${name}.json`);
  return exists(embedded) ? embedded : value;
}

function isFile(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isFile() ?? false;
}
