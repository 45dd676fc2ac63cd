"""Writes a synthetic multi-slice DICOM series with pydicom (Debian python3-pydicom), for fedsfda's DICOM tests.

Usage: /usr/bin/python3 write-series.py SPEC_JSON. SPEC keys (all optional but out): out (folder), rows, cols,
slices, iop (6 direction cosines), origin (LPS mm), pixel_spacing ([row, col] mm), step (mm along the normal),
positions (explicit list of per-slice offsets along the normal, overrides step), tilt_mm (in-plane shift per slice
along the column direction: gantry tilt), bits (8/16), signed, slope, intercept, seed, syntax ('explicit',
'implicit', 'bigendian'), patient_name, patient_id, birth_date, study_date, series_uid, description,
instance_numbers ('ascending', 'descending', 'none'), modality, values_file (stored values, see below). Files are written in a shuffled order with
opaque names, so readers must sort by position, not by file name.
"""
import json
import os
import sys

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

SYNTAX = {'explicit': ExplicitVRLittleEndian, 'implicit': ImplicitVRLittleEndian, 'bigendian': ExplicitVRBigEndian}


def main():
    spec = json.loads(sys.argv[1])
    out = spec['out']
    os.makedirs(out, exist_ok=True)
    rows, cols, n = spec.get('rows', 12), spec.get('cols', 10), spec.get('slices', 6)
    iop = np.array(spec.get('iop', [1, 0, 0, 0, 1, 0]), dtype=float)
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    origin = np.array(spec.get('origin', [-20.0, -30.0, 15.0]))
    offsets = spec.get('positions') or [k * spec.get('step', 2.5) for k in range(n)]
    rng = np.random.default_rng(spec.get('seed', 1))
    bits = spec.get('bits', 16)
    signed = spec.get('signed', True)
    dtype = {(8, False): np.uint8, (8, True): np.int8, (16, False): np.uint16, (16, True): np.int16}[(bits, signed)]
    info = np.iinfo(dtype)
    lo, hi = max(info.min, -1000), min(info.max, 3000)
    series_uid = spec.get('series_uid') or generate_uid()
    study_uid = generate_uid()
    syntax = SYNTAX[spec.get('syntax', 'explicit')]
    order = rng.permutation(n)
    for written, k in enumerate(order):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.4'
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = syntax
        ds = FileDataset(None, Dataset(), file_meta=meta, preamble=b'\0' * 128)
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.PatientName = spec.get('patient_name', 'Anonymous')
        ds.PatientID = spec.get('patient_id', '0')
        ds.PatientBirthDate = spec.get('birth_date', '')
        ds.StudyDate = spec.get('study_date', '')
        ds.SeriesDescription = spec.get('description', '')
        ds.Modality = spec.get('modality', 'MR')
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        numbering = spec.get('instance_numbers', 'ascending')
        if numbering != 'none':
            ds.InstanceNumber = k + 1 if numbering == 'ascending' else n - k
        pos = origin + offsets[k] * normal + k * spec.get('tilt_mm', 0.0) * col_dir
        ds.ImagePositionPatient = [f'{v:.6f}' for v in pos]
        ds.ImageOrientationPatient = [f'{v:.8f}' for v in iop]
        ds.PixelSpacing = [str(v) for v in spec.get('pixel_spacing', [0.9, 1.1])]
        ds.SliceThickness = str(spec.get('slice_thickness', 99.0))  # deliberately wrong: spacing comes from positions
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = 'MONOCHROME2'
        ds.BitsAllocated = bits
        ds.BitsStored = bits
        ds.HighBit = bits - 1
        ds.PixelRepresentation = 1 if signed else 0
        if 'slope' in spec or 'intercept' in spec:
            ds.RescaleSlope = str(spec.get('slope', 1))
            ds.RescaleIntercept = str(spec.get('intercept', 0))
        if 'values_file' in spec:
            # Given stored values, little-endian, slice-major (slice, row, column), in the series' dtype.
            pixels = np.fromfile(spec['values_file'], dtype=np.dtype(dtype).newbyteorder('<')).reshape(n, rows, cols)[k].astype(dtype)
        else:
            pixels = rng.integers(lo, hi, size=(rows, cols), endpoint=True).astype(dtype)
            pixels[0, 0] = k  # a per-slice marker
        ds.PixelData = pixels.astype(pixels.dtype.newbyteorder('>') if syntax == ExplicitVRBigEndian else pixels.dtype).tobytes()
        ds.is_little_endian = syntax != ExplicitVRBigEndian
        ds.is_implicit_VR = syntax == ImplicitVRLittleEndian
        ds.save_as(os.path.join(out, f'IM{written:04d}'), write_like_original=False)


if __name__ == '__main__':
    main()
