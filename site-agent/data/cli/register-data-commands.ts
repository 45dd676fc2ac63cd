/**
 * `fedsfda data ...`: check, inspect, import-dicom, build-phantoms, build-mricron.
 * Exit codes: 0 all usable; 1 bad data (the report says what); 2 usage error or missing dependency.
 */
import type { Command } from 'commander';
import { NiftiError } from '../nifti/nifti-error.ts';
import { DicomError } from '../dicom/dicom-error.ts';
import { checkPath, formatCheckReport } from './check-path.ts';
import { formatImportReport, importDicom } from './import-dicom.ts';
import { formatInspection, inspectNifti } from './inspect-nifti.ts';

function intArg(name: string, min: number) {
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

export function registerDataCommands(program: Command): void {
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

  data
    .command('build-phantoms')
    .description('write one Decathlon-layout dataset of phantom volumes per simulated site (no download needed)')
    .requiredOption('--out <dir>', 'output folder (site-1, site-2, ... are created inside)')
    .requiredOption('--sites <n>', 'number of sites', intArg('sites', 1))
    .option('--cases <n>', 'cases per site', intArg('cases', 1), 6)
    .option('--dims <x,y,z>', 'voxels per case', '64,64,16')
    .option('--spacing <x,y,z>', 'voxel size in mm', '3,3,6')
    .option('--classes <n>', 'number of classes including background', intArg('classes', 2), 4)
    .option('--scanners <list>', 'comma-separated scanner presets, one per site (cycled)')
    .option('--seed <n>', 'random seed', intArg('seed', 0), 1)
    .action(async (o: { out: string; sites: number; cases: number; dims: string; spacing: string; classes: number; scanners?: string; seed: number }) => {
      const { writePhantomDatasets, PhantomError, ScannerShiftError } = await import('../../../simulations/phantoms/index.ts');
      const triple = (name: string, v: string): [number, number, number] => {
        const t = v.split(',').map(Number);
        if (t.length !== 3 || !t.every((x) => Number.isFinite(x) && x > 0)) throw new PhantomError(`--${name} must be three positive numbers like 64,64,16, got "${v}"`);
        return [t[0], t[1], t[2]];
      };
      try {
        const sites = await writePhantomDatasets({
          out: o.out,
          sites: o.sites,
          casesPerSite: o.cases,
          dims: triple('dims', o.dims),
          spacing: triple('spacing', o.spacing),
          numClasses: o.classes,
          ...(o.scanners ? { scanners: o.scanners.split(',').map((s) => s.trim()) as never } : {}),
          seed: o.seed,
        });
        for (const s of sites) process.stdout.write(`${s.dir}: ${o.cases} cases, scanner ${typeof s.scanner === 'string' ? s.scanner : JSON.stringify(s.scanner)}\n`);
      } catch (e) {
        if (e instanceof PhantomError || e instanceof ScannerShiftError) {
          process.stderr.write(`${e.message}\n`);
          process.exitCode = 2;
          return;
        }
        throw e;
      }
    });

  data
    .command('build-mricron')
    .description("build one Decathlon-layout dataset per simulated site from Debian's mricron-data templates (apt-get install mricron-data)")
    .requiredOption('--out <dir>', 'output folder (site-1, site-2, ... are created inside)')
    .requiredOption('--sites <n>', 'number of sites', intArg('sites', 1))
    .option('--cases <n>', 'training cases per site', intArg('cases', 1), 6)
    .option('--test-cases <n>', 'unlabelled cases per site (imagesTs/)', intArg('test-cases', 0), 0)
    .option('--slab <n>', 'axial slices per case', intArg('slab', 1), 12)
    .option('--downsample <n>', 'integer downsampling of the 1 mm template', intArg('downsample', 1), 2)
    .option('--labels <scheme>', 'aal4 (cortex, deep grey, cerebellum) | aal5 (+ white matter) | brain', 'aal4')
    .option('--scanners <list>', 'comma-separated scanner presets, one per site (cycled)')
    .option('--seed <n>', 'random seed', intArg('seed', 0), 1)
    .option('--skull-stripped', 'use the brain-extracted ch2bet image instead of the whole head')
    .option('--templates <dir>', 'template folder (default /usr/share/mricron/templates or FEDSFDA_MRICRON_DIR)')
    .action(
      async (o: { out: string; sites: number; cases: number; testCases: number; slab: number; downsample: number; labels: string; scanners?: string; seed: number; skullStripped?: boolean; templates?: string }) => {
        // Loaded lazily: a hospital's site agent never needs the simulation code.
        const { buildMricronDatasets, MricronError } = await import('../../../simulations/mricron/index.ts');
        const { ScannerShiftError, PhantomError } = await import('../../../simulations/phantoms/index.ts');
        try {
          const sites = await buildMricronDatasets({
            out: o.out,
            sites: o.sites,
            casesPerSite: o.cases,
            testCasesPerSite: o.testCases,
            slabSlices: o.slab,
            downsample: o.downsample,
            labels: o.labels as 'aal4',
            ...(o.scanners ? { scanners: o.scanners.split(',').map((s) => s.trim()) as never } : {}),
            seed: o.seed,
            skullStripped: o.skullStripped ?? false,
            ...(o.templates ? { templatesDir: o.templates } : {}),
          });
          for (const s of sites) process.stdout.write(`${s.dir}: ${s.cases} cases, scanner ${typeof s.scanner === 'string' ? s.scanner : JSON.stringify(s.scanner)}\n`);
        } catch (e) {
          if (e instanceof MricronError || e instanceof ScannerShiftError || e instanceof PhantomError || e instanceof NiftiError) {
            process.stderr.write(`${e.message}\n`);
            process.exitCode = 2;
            return;
          }
          throw e;
        }
      },
    );
}
