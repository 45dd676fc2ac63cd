/**
 * `fedsfda data check`: validates a dataset folder or one NIfTI file and reports, per file, what is wrong.
 * Reading is the check: every image and label is fully decoded (NaN scan included) and every pair cross-checked.
 */
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { DatasetError, type FileProblemCode } from '../dataset/dataset-error.ts';
import { discoverDataset } from '../dataset/discover-dataset.ts';
import { labelCodesOf, loadCase } from '../dataset/load-cases.ts';
import { NiftiError } from '../nifti/nifti-error.ts';
import { isNiftiName } from '../nifti/nifti-pair.ts';
import { readNifti, type ReadNiftiOptions } from '../nifti/read-nifti.ts';

export interface FileCheck {
  readonly file: string;
  readonly role: 'image' | 'label' | 'dataset';
  readonly caseId?: string;
  readonly ok: boolean;
  readonly problems: ReadonlyArray<{ readonly code: FileProblemCode | DatasetError['code']; readonly message: string }>;
}

export interface CheckReport {
  /** True only if every file is usable. */
  readonly ok: boolean;
  readonly path: string;
  readonly kind: 'file' | 'dataset';
  readonly layout?: 'decathlon' | 'pairs';
  readonly cases: number;
  readonly usableCases: number;
  readonly files: readonly FileCheck[];
}

function shortMessage(e: NiftiError): string {
  return e.message.replace(`${e.file}: `, '').replace(/ \[[A-Z_]+\]$/, '');
}

/** Checks a folder (dataset) or a single file. Never throws for bad data; only for programming errors. */
export async function checkPath(path: string, opts: ReadNiftiOptions = {}): Promise<CheckReport> {
  const abs = resolve(path);
  let isDir = false;
  try {
    isDir = (await stat(abs)).isDirectory();
  } catch {
    // Missing paths are reported by the file reader below (NOT_FOUND).
  }
  if (!isDir || isNiftiName(abs)) {
    if (isDir) {
      return { ok: false, path: abs, kind: 'file', cases: 1, usableCases: 0, files: [{ file: abs, role: 'image', ok: false, problems: [{ code: 'NOT_A_FILE', message: 'is a directory, not a NIfTI file' }] }] };
    }
    try {
      await readNifti(abs, opts);
      return { ok: true, path: abs, kind: 'file', cases: 1, usableCases: 1, files: [{ file: abs, role: 'image', ok: true, problems: [] }] };
    } catch (e) {
      if (!(e instanceof NiftiError)) throw e;
      return { ok: false, path: abs, kind: 'file', cases: 1, usableCases: 0, files: [{ file: abs, role: 'image', ok: false, problems: [{ code: e.code, message: shortMessage(e) }] }] };
    }
  }
  let ds;
  try {
    ds = await discoverDataset(abs);
  } catch (e) {
    if (!(e instanceof DatasetError)) throw e;
    return { ok: false, path: abs, kind: 'dataset', cases: 0, usableCases: 0, files: [{ file: e.path, role: 'dataset', ok: false, problems: [{ code: e.code, message: e.message.split('\n')[0] }] }] };
  }
  const files = new Map<string, { file: string; role: 'image' | 'label'; caseId: string; problems: Array<{ code: FileProblemCode; message: string }> }>();
  const entry = (file: string, role: 'image' | 'label', caseId: string) => {
    let f = files.get(file);
    if (f === undefined) {
      f = { file, role, caseId, problems: [] };
      files.set(file, f);
    }
    return f;
  };
  for (const p of ds.problems) entry(p.file, p.role, p.caseId).problems.push({ code: p.code, message: p.message });
  let codes: readonly number[] | undefined;
  try {
    codes = labelCodesOf(ds);
  } catch (e) {
    if (!(e instanceof DatasetError)) throw e;
    return { ok: false, path: abs, kind: 'dataset', layout: ds.layout, cases: ds.training.length, usableCases: 0, files: [{ file: e.path, role: 'dataset', ok: false, problems: [{ code: e.code, message: e.message.split('\n')[0] }] }] };
  }
  let usable = 0;
  for (const c of ds.training) {
    // Register both files first so good ones are listed as ok.
    entry(c.image, 'image', c.id);
    if (c.label) entry(c.label, 'label', c.id);
    const r = await loadCase(c, opts, codes, ds.modalities?.length);
    if (r.ok) usable++;
    else for (const p of r.problems) entry(p.file, p.role, p.caseId).problems.push({ code: p.code, message: p.message });
  }
  for (const t of ds.test) {
    const f = entry(t.image, 'image', t.id);
    try {
      await readNifti(t.image, opts);
    } catch (e) {
      if (!(e instanceof NiftiError)) throw e;
      f.problems.push({ code: e.code, message: shortMessage(e) });
    }
  }
  const list: FileCheck[] = [...files.values()].map((f) => ({ ...f, ok: f.problems.length === 0 }));
  const caseIds = new Set([...ds.training.map((c) => c.id), ...ds.problems.map((p) => p.caseId)]);
  return { ok: list.every((f) => f.ok), path: abs, kind: 'dataset', layout: ds.layout, cases: caseIds.size, usableCases: usable, files: list };
}

export function formatCheckReport(r: CheckReport): string {
  const lines: string[] = [];
  for (const f of r.files) {
    if (f.ok) lines.push(`ok    ${f.file}`);
    else for (const p of f.problems) lines.push(`BAD   ${f.file}: ${p.message} [${p.code}]`);
  }
  const bad = r.files.filter((f) => !f.ok).length;
  lines.push(
    r.kind === 'dataset'
      ? `${r.ok ? 'OK' : 'NOT USABLE'}: ${r.path} (${r.layout ?? 'unknown layout'}), ${r.usableCases}/${r.cases} training case(s) usable, ${bad} bad file(s)`
      : `${r.ok ? 'OK' : 'NOT USABLE'}: ${r.path}`,
  );
  return lines.join('\n');
}
