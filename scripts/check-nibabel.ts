/**
 * `npm run check:nibabel`: fedsfda's NIfTI reader against nibabel 5.0 on every NIfTI file it can find
 * (see scripts/nibabel-check/compare.ts). Prints one line per disagreement or refusal and a JSON summary;
 * exits 1 on any disagreement, 2 when /usr/bin/python3 cannot import nibabel (apt-get install python3-nibabel).
 * `--verbose` prints every file.
 */
import { nibabelAvailable, runNibabelCheck } from './nibabel-check/compare.ts';

const verbose = process.argv.includes('--verbose');
if (!(await nibabelAvailable())) {
  process.stderr.write('check:nibabel needs /usr/bin/python3 with nibabel (apt-get install python3-nibabel; nifti-bin and dcm2niix add their files)\n');
  process.exit(2);
}
const report = await runNibabelCheck((r) => {
  if (r.outcome === 'disagree') process.stdout.write(`DISAGREE ${r.file}: ${r.differences.join('; ')}\n`);
  else if (verbose) process.stdout.write(`${r.outcome.padEnd(17)} ${r.file}${r.fedsfdaError ? `  [fedsfda ${r.fedsfdaError.split(':')[0]}; nibabel ${r.nibabelError ?? 'reads it'}]` : ''}\n`);
});
const { results: _results, ...summary } = report;
process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
process.exit(report.disagreements === 0 ? 0 : 1);
