/**
 * Label schemes built from the mricron-data atlases on the ch2 grid. AAL (Tzourio-Mazoyer et al. 2002)
 * numbers its 116 regions as listed in aal.nii.txt: 1-90 cerebrum (71-78 are the deep grey nuclei:
 * caudate, putamen, pallidum, thalamus), 91-108 cerebellar hemispheres, 109-116 vermis.
 */
export type MricronLabelScheme = 'aal4' | 'aal5' | 'brain';

export const LABEL_NAMES: Readonly<Record<MricronLabelScheme, Readonly<Record<number, string>>>> = {
  brain: { 0: 'background', 1: 'brain' },
  aal4: { 0: 'background', 1: 'cerebral cortex', 2: 'deep grey nuclei', 3: 'cerebellum' },
  aal5: { 0: 'background', 1: 'cerebral cortex', 2: 'deep grey nuclei', 3: 'cerebellum', 4: 'other brain (white matter)' },
};

function aalGroup(v: number): number {
  if (v >= 71 && v <= 78) return 2;
  if (v >= 1 && v <= 90) return 1;
  if (v >= 91 && v <= 116) return 3;
  return 0;
}

/** Builds the label volume (canonical order) from the AAL atlas and the ch2bet brain mask. */
export function buildLabels(scheme: MricronLabelScheme, aal: Float32Array, brain: Float32Array): Uint8Array {
  const out = new Uint8Array(aal.length);
  for (let i = 0; i < out.length; i++) {
    const inBrain = brain[i] > 0;
    switch (scheme) {
      case 'brain':
        out[i] = inBrain ? 1 : 0;
        break;
      case 'aal4':
        out[i] = aalGroup(aal[i]);
        break;
      case 'aal5': {
        const g = aalGroup(aal[i]);
        out[i] = g !== 0 ? g : inBrain ? 4 : 0;
        break;
      }
      default: {
        const never: never = scheme;
        throw new Error(`unhandled label scheme ${String(never)}`);
      }
    }
  }
  return out;
}
