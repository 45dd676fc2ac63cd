/**
 * `fedsfda data build-phantoms` and `fedsfda data build-mricron`: the simulations' dataset builders, registered
 * under the site agent's `data` command group (a hospital's own `data check`/`data inspect` load none of this).
 * Exit codes as `data`: 0 done; 2 usage error or missing dependency.
 */
import type { Command } from 'commander';
import { intArg, NiftiError } from '../site-agent/data/index.ts';

/** Adds the builders to the `data` command (`registerDataCommands`' result). */
export function registerDatasetBuilderCommands(data: Command): void {
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
      const { writePhantomDatasets, PhantomError, ScannerShiftError } = await import('./phantoms/index.ts');
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
        const { buildMricronDatasets, MricronError } = await import('./mricron/index.ts');
        const { ScannerShiftError, PhantomError } = await import('./phantoms/index.ts');
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
