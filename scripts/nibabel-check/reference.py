"""nibabel's reading of NIfTI files, for scripts/check-nibabel.ts (the reference side of the comparison).

Protocol: one absolute path per line on stdin; for each, one JSON line on stdout. When nibabel reads the file as
NIfTI, the canonical voxels (nibabel's io_orientation / apply_orientation, as as_closest_canonical does; 2D files
padded to 3D first) are written as little-endian float32, x fastest, volume after volume, to the path given as
argv[1], NaN/Inf replaced by 0 (their count is reported). Run with Debian's /usr/bin/python3 (python3-nibabel).
"""
import json
import sys
import warnings

import numpy as np
import nibabel as nib
from nibabel.orientations import aff2axcodes, apply_orientation, inv_ornt_aff, io_orientation

NIFTI_CLASSES = (nib.Nifti1Image, nib.Nifti2Image, nib.Nifti1Pair, nib.Nifti2Pair)
UNIT_MM = {'meter': 1000.0, 'mm': 1.0, 'micron': 0.001, 'unknown': 1.0}


def describe(path, out):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            img = nib.load(path)
            if not isinstance(img, NIFTI_CLASSES):
                # A NIfTI file with an extension nibabel knows (CIFTI-2) is still a NIfTI file: read it as one.
                found = None
                for loader in (nib.Nifti2Image, nib.Nifti1Image):
                    try:
                        found = loader.from_filename(path)
                        break
                    except Exception:
                        pass
                if found is None:
                    return {'ok': False, 'error': f'nibabel reads it as {type(img).__name__}, not NIfTI'}
                img = found
            hdr = img.header
            shape = tuple(int(s) for s in img.shape)
            aff = np.array(img.affine, dtype=np.float64)
            data = np.asanyarray(img.get_fdata(dtype=np.float64))
    except Exception as e:  # nibabel refuses the file: report why
        return {'ok': False, 'error': f'{type(e).__name__}: {e}'}
    unit = UNIT_MM.get(hdr.get_xyzt_units()[0], 1.0)
    aff[:3, :] *= unit
    shape3 = tuple(list(shape[:3]) + [1] * (3 - min(3, len(shape))))
    nvol = int(np.prod(shape[3:])) if len(shape) > 3 else 1
    arr = data.reshape(shape3 + (nvol,), order='F')
    ornt = io_orientation(aff)
    canon = apply_orientation(arr, ornt)
    canon_aff = aff @ inv_ornt_aff(ornt, shape3)
    finite = np.isfinite(canon)
    non_finite = int(canon.size - finite.sum())
    canon = np.where(finite, canon, 0.0)
    with np.errstate(over='ignore', invalid='ignore'):
        f32 = canon.astype('<f4')
    overflow = int(np.sum(~np.isfinite(f32)))
    with open(out, 'wb') as fh:
        for k in range(nvol):
            fh.write(np.asfortranarray(f32[..., k]).tobytes(order='F'))
    return {
        'ok': True,
        'class': type(img).__name__,
        'shape': shape,
        'dtype': hdr.get_data_dtype().name,
        'axcodes': ''.join(aff2axcodes(aff)),
        'affine': aff.tolist(),
        'canonShape': [int(s) for s in canon.shape[:3]],
        'canonAffine': canon_aff.tolist(),
        'spacing': np.sqrt((canon_aff[:3, :3] ** 2).sum(axis=0)).tolist(),
        'volumes': nvol,
        'nonFinite': non_finite,
        'float32Overflow': overflow,
        'unitFactor': unit,
    }


def main():
    out = sys.argv[1]
    for line in sys.stdin:
        path = line.rstrip('\n')
        if not path:
            continue
        print(json.dumps({'file': path, **describe(path, out)}), flush=True)


if __name__ == '__main__':
    main()
