/**
 * `fedsfda data import-dicom DIR --out DIR`: every DICOM image series under DIR becomes `series-NNN.nii.gz` in OUT
 * (voxels and geometry as readDicomSeries assembles them), with `import-summary.json`. Series are named by their
 * index only; nothing written or printed carries header text (names, IDs, dates, UIDs, descriptions).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { DicomError } from '../dicom/dicom-error.ts';
import { assembleDicomSeries, scanDicomFolder, type DicomReadOptions } from '../dicom/dicom-series.ts';
import { writeNifti } from '../nifti/write-nifti.ts';

export interface ImportedSeries {
  readonly index: number;
  readonly slices: number;
  /** Written file (relative to the output folder), absent when the series was refused. */
  readonly file?: string;
  readonly dims?: readonly number[];
  readonly spacing?: readonly number[];
  /** Stored axis codes of the written file (canonical RAS in memory, as for any NIfTI). */
  readonly orientation?: string;
  readonly error?: { readonly code: string; readonly message: string };
}

export interface ImportReport {
  /** True when at least one series was written and none was refused. */
  readonly ok: boolean;
  readonly series: readonly ImportedSeries[];
  /** Files that are not usable images (paths relative to the input folder). */
  readonly skipped: ReadonlyArray<{ readonly file: string; readonly code: string; readonly message: string }>;
}

export async function importDicom(dir: string, out: string, opts: DicomReadOptions = {}): Promise<ImportReport> {
  const scan = await scanDicomFolder(dir, opts);
  await mkdir(out, { recursive: true });
  const series: ImportedSeries[] = [];
  const width = Math.max(3, String(scan.series.length).length);
  for (const s of scan.series) {
    const name = `series-${String(s.index).padStart(width, '0')}.nii.gz`;
    try {
      const v = assembleDicomSeries(`${dir} (series ${s.index})`, s.slices, opts);
      await writeNifti(join(out, name), v.data, v, { datatype: 'float32' });
      series.push({ index: s.index, slices: s.slices.length, file: name, dims: v.dims, spacing: v.spacing, orientation: v.orientation });
    } catch (e) {
      if (!(e instanceof DicomError)) throw e;
      series.push({ index: s.index, slices: s.slices.length, error: { code: e.code, message: e.message.replace(`${e.file}: `, '').replace(/ \[[A-Z_]+\]$/, '') } });
    }
  }
  const skipped = scan.skipped.map((k) => ({ file: relative(dir, k.file), code: k.code, message: k.message }));
  const report: ImportReport = { ok: series.length > 0 && series.every((s) => s.error === undefined), series, skipped };
  await writeFile(join(out, 'import-summary.json'), `${JSON.stringify(report, null, 2)}\n`);
  return report;
}

export function formatImportReport(r: ImportReport, out: string): string {
  const lines = r.series.map((s) =>
    s.error
      ? `REFUSED series ${s.index} (${s.slices} slices): ${s.error.message} [${s.error.code}]`
      : `ok      series ${s.index} (${s.slices} slices) -> ${join(out, s.file!)}: ${s.dims!.join('x')} voxels, ${s.spacing!.map((x) => +x.toFixed(4)).join(' x ')} mm, stored ${s.orientation}`,
  );
  const byCode = new Map<string, number>();
  for (const k of r.skipped) byCode.set(k.code, (byCode.get(k.code) ?? 0) + 1);
  if (r.skipped.length > 0) lines.push(`skipped ${r.skipped.length} file(s) that are not usable images: ${[...byCode].map(([c, n]) => `${n} ${c}`).join(', ')} (details in import-summary.json)`);
  lines.push(`${r.ok ? 'OK' : r.series.some((s) => s.file) ? 'PARTIAL' : 'NOTHING IMPORTED'}: ${r.series.filter((s) => s.file).length}/${r.series.length} series written to ${out}`);
  return lines.join('\n');
}
