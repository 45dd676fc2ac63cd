/**
 * NIfTI header/image pairs (`X.hdr` + `X.img`, magic `ni1`/`ni2`): either name finds the other, as nibabel's
 * `types_filenames` does (the companion keeps the extension's case and its `.gz`).
 */
const PAIR_NAME = /^(.*)\.(hdr|img)(\.gz)?$/i;

/** The two files of a pair named by `file`, or undefined when `file` is not named like one. */
export function pairFiles(file: string): { header: string; image: string } | undefined {
  const m = PAIR_NAME.exec(file);
  if (m === null) return undefined;
  const [, base, ext, gz = ''] = m;
  const upper = ext === ext.toUpperCase();
  const other = ext.toLowerCase() === 'hdr' ? 'img' : 'hdr';
  const companion = `${base}.${upper ? other.toUpperCase() : other}${gz}`;
  return ext.toLowerCase() === 'hdr' ? { header: file, image: companion } : { header: companion, image: file };
}

/** True for names a NIfTI reader accepts: .nii, .nii.gz, .hdr, .img (optionally .gz). */
export function isNiftiName(file: string): boolean {
  return /\.nii(\.gz)?$/i.test(file) || PAIR_NAME.test(file);
}
