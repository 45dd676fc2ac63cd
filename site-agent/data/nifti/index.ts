export { NiftiError, type NiftiErrorCode } from './nifti-error.ts';
export { NIFTI_DATATYPES, type NiftiDatatype, type NiftiDatatypeName } from './datatypes.ts';
export { applyAffine, identity44, mat44ToQuatern, mul44, quaternToMat44, type Mat44, type Quatern } from './affine.ts';
export {
  canonicalAffine,
  canonicalDims,
  computeReorientation,
  orientationCode,
  polarOrthogonal,
  reorientFromCanonical,
  reorientToCanonical,
  type Dims3,
  type Reorientation,
} from './orientation.ts';
export { geometryFromAffine, geometryFromSpacing, parseNiftiHeader, type NiftiGeometry, type NiftiHeaderInfo, type NiftiLike } from './nifti-header.ts';
export { decodeNifti, DEFAULT_MAX_NIFTI_BYTES, readNifti, readNiftiChannels, readNiftiHeader, type NiftiChannels, type NiftiVolume, type ReadNiftiOptions } from './read-nifti.ts';
export { isNiftiName, pairFiles } from './nifti-pair.ts';
export { bestAffine, quaternionRotation, type AffineSource, type BestAffine } from './best-affine.ts';
export { encodeNifti, writeNifti, type WriteNiftiOptions } from './write-nifti.ts';
export { classCodes, classMapToCodes, isIdentityCodes, labelValues, MAX_CLASSES, toLabelMap } from './label-map.ts';
export { boundedGunzip, isGzip } from './bounded-gunzip.ts';
