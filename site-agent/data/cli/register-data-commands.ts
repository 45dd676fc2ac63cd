/**
 * `fedsfda data ...`: check, inspect and import-dicom (the dataset builders, build-phantoms and build-mricron, are registered
 * into this group by simulations/dataset-commands.ts).
 * Exit codes: 0 all usable; 1 bad data (the report says what); 2 usage error or missing dependency.
 */
import type { Command } from 'commander';
import { NiftiError } from '../nifti/nifti-error.ts';
import { DicomError } from '../dicom/dicom-error.ts';
import { checkPath, formatCheckReport } from './check-path.ts';
import { formatImportReport, importDicom } from './import-dicom.ts';
import { formatInspection, inspectNifti } from './inspect-nifti.ts';

/** A commander parser for an integer option >= `min`. */
export function intArg(name: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got "${v}"`);
    return n;
  };
}

interface ReadFlags {
  json?: boolean;
  maxBytes?: number;
  volume?: number;
}

function readOpts(o: ReadFlags): { maxBytes?: number; volumeIndex?: number } {
  return { ...(o.maxBytes !== undefined ? { maxBytes: o.maxBytes } : {}), ...(o.volume !== undefined ? { volumeIndex: o.volume } : {}) };
}

export function registerDataCommands(program: Command): Command {
  const data = program.command('data').description('check, inspect and build NIfTI datasets');

  data
    .command('check')
    .description('validate a dataset folder (Decathlon/nnU-Net or image/label pairs) or one NIfTI file; exit 0 only if all is usable')
    .argument('<path>', 'dataset folder or .nii/.nii.gz file')
    .option('--json', 'print a machine-readable report')
    .option('--max-bytes <n>', 'refuse volumes larger than this many bytes as float32 (default 1 GiB)', intArg('max-bytes', 1))
    .option('--volume <i>', 'for 4D images: which volume (channel) to read', intArg('volume', 0))
    .action(async (path: string, o: ReadFlags) => {
      const report = await checkPath(path, readOpts(o));
      process.stdout.write(`${o.json ? JSON.stringify(report, null, 2) : formatCheckReport(report)}\n`);
      process.exitCode = report.ok ? 0 : 1;
    });

  data
    .command('inspect')
    .description('print header facts: dims, datatype, spacing, orientation, intensity range, label values')
    .argument('<file>', '.nii or .nii.gz file')
    .option('--json', 'print JSON')
    .option('--max-bytes <n>', 'refuse volumes larger than this many bytes as float32 (default 1 GiB)', intArg('max-bytes', 1))
    .option('--volume <i>', 'for 4D images: which volume to describe (default 0)', intArg('volume', 0))
    .action(async (file: string, o: ReadFlags) => {
      try {
        const info = await inspectNifti(file, readOpts(o));
        process.stdout.write(`${o.json ? JSON.stringify(info, null, 2) : formatInspection(info)}\n`);
      } catch (e) {
        if (!(e instanceof NiftiError)) throw e;
        process.stderr.write(`${e.message}\n`);
        process.exitCode = 1;
      }
    });

  data
    .command('import-dicom')
    .description('convert every DICOM image series under a folder to NIfTI (series-001.nii.gz, ...); no header text is copied')
    .argument('<dir>', 'folder with DICOM files (searched recursively)')
    .requiredOption('--out <dir>', 'output folder')
    .option('--json', 'print the report as JSON')
    .option('--max-bytes <n>', 'refuse series larger than this many bytes as float32 (default 1 GiB)', intArg('max-bytes', 1))
    .action(async (dir: string, o: { out: string; json?: boolean; maxBytes?: number }) => {
      try {
        const report = await importDicom(dir, o.out, o.maxBytes !== undefined ? { maxBytes: o.maxBytes } : {});
        process.stdout.write(`${o.json ? JSON.stringify(report, null, 2) : formatImportReport(report, o.out)}\n`);
        process.exitCode = report.ok ? 0 : report.series.some((s) => s.file) ? 1 : 2;
      } catch (e) {
        if (!(e instanceof DicomError)) throw e;
        process.stderr.write(`${e.message}\n`);
        process.exitCode = 2;
      }
    });

  return data;
}
