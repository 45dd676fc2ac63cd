"""Writes the generated part of the nibabel comparison corpus into argv[1] and prints its file list as JSON.

Three writers other than fedsfda: nifti_clib's nifti_tool (Debian nifti-bin: header edits of real files, every
datatype, pairs, gzip, byte-swapped headers), dcm2niix (conversions of the DICOM files that ship with pydicom and
nibabel), and nibabel itself (random oblique and sheared affines, NIfTI-2, big-endian, 2D and 5D images, every
datatype). Deterministic (seeded); missing tools are skipped and reported in the 'skipped' list.
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import nibabel as nib

NIBABEL_DATA = os.path.join(os.path.dirname(nib.__file__), 'tests', 'data')
PYDICOM_DATA = '/usr/lib/python3/dist-packages/pydicom/data/test_files'


def run(cmd):
    return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def rotation(rng):
    # A uniformly random rotation: a random unit quaternion.
    from nibabel.quaternions import quat2mat
    q = rng.normal(size=4)
    return quat2mat(q / np.linalg.norm(q))


def nifti_tool_files(out, skipped):
    tool = shutil.which('nifti_tool')
    if tool is None:
        skipped.append('nifti_tool (apt-get install nifti-bin)')
        return []
    d = os.path.join(out, 'nifti_tool')
    os.makedirs(d, exist_ok=True)
    base = os.path.join(NIBABEL_DATA, 'anatomical.nii')
    func = os.path.join(NIBABEL_DATA, 'functional.nii')
    made = []

    def tool_run(name, args, infile=base):
        p = os.path.join(d, name)
        if run([tool, *args, '-prefix', p, '-infiles', infile]):
            made.append(p)

    for ext in ['copy.nii', 'copy.nii.gz', 'pair.hdr', 'pairgz.hdr.gz']:
        tool_run(ext, ['-copy_im'])
    tool_run('vols.nii', ['-cbl'], func + '[0,2]')
    tool_run('vols4d.nii.gz', ['-cbl'], func + '[1..3]')
    tool_run('swapped.nii', ['-swap_as_nifti'])
    rng = np.random.default_rng(7)
    mods = {
        'codes00': [('qform_code', '0'), ('sform_code', '0')],
        'codes10': [('qform_code', '1'), ('sform_code', '0')],
        'codes01': [('qform_code', '0'), ('sform_code', '1')],
        'code_bad_sform': [('sform_code', '9')],
        'code_neg_sform': [('sform_code', '-1'), ('qform_code', '1')],
        'pixdim_neg': [('pixdim', '1 -2 3 -4 1 1 1 1'), ('sform_code', '0'), ('qform_code', '1')],
        'pixdim_zero': [('pixdim', '1 0 3 0 1 1 1 1'), ('sform_code', '0'), ('qform_code', '1')],
        'pixdim_zero_base': [('pixdim', '1 0 3 2.5 1 1 1 1'), ('sform_code', '0'), ('qform_code', '0')],
        'qfac_neg': [('pixdim', '-1 2 3 4 1 1 1 1'), ('sform_code', '0'), ('qform_code', '1')],
        'qfac_zero': [('pixdim', '0 2 3 4 1 1 1 1'), ('sform_code', '0'), ('qform_code', '1')],
        'units_m': [('xyzt_units', '1')],
        'units_um': [('xyzt_units', '3')],
        'slope': [('scl_slope', '2.5'), ('scl_inter', '-7')],
        'slope_zero': [('scl_slope', '0'), ('scl_inter', '3')],
        'slope_nan': [('scl_slope', 'nan'), ('scl_inter', '3')],
        'inter_nan': [('scl_slope', '2'), ('scl_inter', 'nan')],
        'slope_overflow': [('scl_slope', '1e36'), ('scl_inter', '0')],
        'voxoff0': [('vox_offset', '0')],
        'voxoff348': [('vox_offset', '348')],
        'dim0_8': [('dim', '8 33 41 25 1 1 1 1')],
        'dim_neg': [('dim', '3 -33 41 25 1 1 1 1')],
        'datatype_bad': [('datatype', '77')],
        'bitpix_bad': [('bitpix', '8')],
        'quat_180': [('quatern_b', '0.70710677'), ('quatern_c', '0.70710677'), ('quatern_d', '0'), ('sform_code', '0'), ('qform_code', '1')],
        'quat_big': [('quatern_b', '0.9'), ('quatern_c', '0.9'), ('quatern_d', '0'), ('sform_code', '0'), ('qform_code', '1')],
    }
    for k in range(16):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        if q[0] < 0:
            q = -q
        mods[f'quat_{k:02d}'] = [('quatern_b', repr(q[1])), ('quatern_c', repr(q[2])), ('quatern_d', repr(q[3])),
                                 ('pixdim', f'{rng.choice([-1, 1])} {rng.uniform(0.5, 3):.4f} {rng.uniform(0.5, 3):.4f} {rng.uniform(0.5, 3):.4f} 1 1 1 1'),
                                 ('sform_code', '0'), ('qform_code', '1')]
    for k in range(24):
        # Strongly oblique (any angle) and, for a third of them, sheared sforms.
        m = rotation(rng) @ np.diag(rng.uniform(0.5, 3, 3))
        if k % 3 == 2:
            m = m @ (np.eye(3) + np.triu(rng.uniform(-0.4, 0.4, (3, 3)), 1))
        t = rng.uniform(-100, 100, 3)
        mods[f'srow_{k:02d}'] = [('sform_code', str(1 + k % 4))] + [
            (f'srow_{a}', ' '.join(f'{v:.7g}' for v in [*m[i], t[i]])) for i, a in enumerate('xyz')]
    for name, fields in mods.items():
        args = ['-mod_hdr']
        for f, v in fields:
            args += ['-mod_field', f, v]
        tool_run(f'{name}.nii', args)
    # Every datatype code nifti_tool knows (zero-filled volumes; the header is what differs).
    for dt in [2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280, 1536, 1792, 2304]:
        p = os.path.join(d, f'make_dt{dt}.nii')
        if run([tool, '-make_im', '-new_dim', '3', '5', '6', '7', '0', '0', '0', '0', '-new_datatype', str(dt), '-prefix', p]):
            made.append(p)
    p = os.path.join(d, 'make_5d.nii.gz')
    if run([tool, '-make_im', '-new_dim', '5', '4', '5', '3', '1', '2', '0', '0', '-new_datatype', '16', '-prefix', p]):
        made.append(p)
    return [p for p in made if os.path.exists(p) or os.path.exists(p.replace('.hdr', '.img'))]


def dcm2niix_files(out, skipped):
    tool = shutil.which('dcm2niix')
    if tool is None:
        skipped.append('dcm2niix (apt-get install dcm2niix)')
        return []
    made = []
    sources = sorted(glob.glob(os.path.join(PYDICOM_DATA, '*.dcm'))) + sorted(glob.glob(os.path.join(NIBABEL_DATA, '*.dcm')))
    for i, src in enumerate(sources):
        # One folder per input so that dcm2niix converts each file on its own.
        sd = os.path.join(out, 'dcm2niix', f'in{i:03d}')
        od = os.path.join(out, 'dcm2niix', f'out{i:03d}')
        os.makedirs(sd, exist_ok=True)
        os.makedirs(od, exist_ok=True)
        shutil.copy(src, sd)
        run([tool, '-z', 'y' if i % 2 else 'n', '-b', 'n', '-f', 'conv_%s', '-o', od, sd])
        made += sorted(glob.glob(os.path.join(od, '*.nii*')))
    return made


def nibabel_files(out):
    d = os.path.join(out, 'nibabel')
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(11)
    made = []

    def save(img, name):
        p = os.path.join(d, name)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            nib.save(img, p)
        made.append(p)

    base = rng.normal(100, 30, (9, 7, 5))
    for k in range(40):
        m = rotation(rng) @ np.diag(rng.uniform(0.4, 4, 3))
        if k % 4 == 3:
            m = m @ (np.eye(3) + np.triu(rng.uniform(-0.5, 0.5, (3, 3)), 1))
        aff = np.eye(4)
        aff[:3, :3] = m
        aff[:3, 3] = rng.uniform(-50, 50, 3)
        img = nib.Nifti1Image(base.astype(np.float32), aff)
        if k % 5 == 4:
            img.set_sform(None, code=0)  # qform only (shear dropped by the quaternion)
        save(img, f'oblique_{k:02d}.nii' + ('.gz' if k % 2 else ''))
    # Axis-aligned permutations with flips: all 48.
    import itertools
    for p_i, perm in enumerate(itertools.permutations(range(3))):
        for flips in itertools.product([1, -1], repeat=3):
            aff = np.zeros((4, 4))
            aff[3, 3] = 1
            for i in range(3):
                aff[perm[i], i] = flips[i] * (1 + i * 0.5)
            save(nib.Nifti1Image(base.astype(np.int16), aff), f'perm_{p_i}_{"".join("+" if f > 0 else "-" for f in flips)}.nii')
    aff = np.diag([1.5, 2, 2.5, 1])
    for dt in [np.uint8, np.int8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64, np.float32, np.float64]:
        data = (rng.uniform(0, 120, (6, 5, 4))).astype(dt)
        save(nib.Nifti1Image(data, aff, dtype=dt), f'dtype_{np.dtype(dt).name}.nii.gz')
        big = nib.Nifti1Image(data.astype(np.dtype(dt).newbyteorder('>')), aff, dtype=np.dtype(dt).newbyteorder('>'))
        save(big, f'dtype_{np.dtype(dt).name}_be.nii')
    for dt in [np.int16, np.float32]:
        img = nib.Nifti1Image(rng.uniform(-5, 5, (6, 5, 4)).astype(np.float32), aff)
        img.set_data_dtype(dt)
        save(img, f'scaled_{np.dtype(dt).name}.nii')  # nibabel picks scl_slope/inter for int16
    save(nib.Nifti2Image(base.astype(np.float32), aff), 'nifti2.nii')
    save(nib.Nifti2Image(base.astype(np.int16), aff), 'nifti2.nii.gz')
    save(nib.Nifti2Pair(base.astype(np.int16), aff), 'nifti2pair.hdr')
    save(nib.Nifti1Pair(base.astype(np.int16), aff), 'nifti1pair.img')
    save(nib.Nifti1Pair(base.astype(np.float32), aff), 'nifti1pairgz.hdr.gz')
    save(nib.Nifti1Image(rng.normal(size=(8, 6)).astype(np.float32), aff), 'two_d.nii')
    save(nib.Nifti1Image(rng.normal(size=(5, 4, 3, 2, 3)).astype(np.float32), aff), 'five_d.nii.gz')
    save(nib.Nifti1Image(rng.normal(size=(5, 4, 3, 3)).astype(np.float32), aff), 'four_d.nii.gz')
    withnan = base.astype(np.float32)
    withnan[1, 2, 3] = np.nan
    withnan[0, 0, 0] = np.inf
    save(nib.Nifti1Image(withnan, aff), 'nonfinite.nii')
    save(nib.Nifti1Image(rng.normal(size=(4, 4, 4)).astype(np.complex64), aff), 'complex.nii')
    return made


def main():
    out = sys.argv[1]
    skipped = []
    files = nifti_tool_files(out, skipped) + dcm2niix_files(out, skipped) + nibabel_files(out)
    print(json.dumps({'files': files, 'skipped': skipped}))


if __name__ == '__main__':
    main()
