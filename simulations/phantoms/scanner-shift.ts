/**
 * Scanner / site shift specifications: how one simulated scanner's images differ from another's.
 * The schema is exported so that scenario files can validate a per-site `shift` field
 * (`ScannerShiftOrPresetSchema` accepts either a preset name or a full spec).
 */
import { z } from 'zod';

/** Tissue-contrast remapping applied to the noise-free [0,1] phantom intensities. */
export const IntensityMapSchema = z.discriminatedUnion('kind', [
  /** y = scale * x + offset (gain / offset drift between scanners; mostly removed by z-scoring). */
  z.object({ kind: z.literal('linear'), scale: z.number().finite(), offset: z.number().finite() }).strict(),
  /** y = 1 - x: contrast inversion, an MR->CT-like shift where bright tissues become dark. */
  z.object({ kind: z.literal('invert') }).strict(),
  /**
   * Piecewise-linear transfer function through control points (x ascending, outside the range the
   * end values are held). Non-monotone curves reorder tissue contrasts, as between MR sequences or MR and CT.
   */
  z.object({
    kind: z.literal('piecewise'),
    points: z
      .array(z.tuple([z.number().finite(), z.number().finite()]))
      .min(2)
      .refine((pts) => pts.every((p, i) => i === 0 || p[0] > pts[i - 1][0]), {
        message: 'piecewise points must have strictly increasing x',
      }),
  }).strict(),
]);
export type IntensityMap = z.infer<typeof IntensityMapSchema>;

export const ScannerShiftSchema = z
  .object({
    intensityMap: IntensityMapSchema.optional(),
    /** y = x^gamma on the [0,1]-clamped mapped intensity (gamma > 0). */
    gamma: z.number().positive().finite().optional(),
    /** Smooth multiplicative bias field exp(strength * s(x,y)), s in [-1,1] random per case (MR RF inhomogeneity). */
    biasField: z.object({ strength: z.number().min(0).max(3) }).strict().optional(),
    /** Additive Gaussian noise, sigma in units of the [0,1] tissue intensity range. */
    noise: z.object({ sigma: z.number().min(0).max(5) }).strict().optional(),
    /** In-plane Gaussian point-spread function, sigma in pixels. */
    blur: z.object({ sigma: z.number().min(0).max(20) }).strict().optional(),
    /** Acquired at 1/factor the in-plane resolution, then interpolated back onto the grid (factor >= 1). */
    resolution: z.object({ factor: z.number().min(1).max(16) }).strict().optional(),
  })
  .strict();
export type ScannerShift = z.infer<typeof ScannerShiftSchema>;

/**
 * Named scanners. `scanner-a` is the reference (source) scanner of the benchmarks; `scanner-b`..`scanner-d`
 * are moderate shifts a federated model should cope with; `mr-to-ct` inverts the tissue contrast and is the
 * source-free adaptation target (a model trained on `scanner-a` degrades strongly on it).
 */
export const SCANNER_PRESETS = {
  none: {},
  'scanner-a': { noise: { sigma: 0.03 }, biasField: { strength: 0.1 } },
  'scanner-b': {
    intensityMap: { kind: 'linear', scale: 0.8, offset: 0.1 },
    gamma: 0.7,
    biasField: { strength: 0.35 },
    noise: { sigma: 0.05 },
    blur: { sigma: 0.6 },
  },
  'scanner-c': { gamma: 1.6, noise: { sigma: 0.04 }, resolution: { factor: 1.6 } },
  'scanner-d': {
    // A different sequence: the inner structure brightens relative to the ring (contrast reordering).
    intensityMap: { kind: 'piecewise', points: [[0, 0.05], [0.3, 0.55], [0.6, 0.45], [1, 0.9]] },
    biasField: { strength: 0.2 },
    noise: { sigma: 0.04 },
  },
  'low-field': { noise: { sigma: 0.1 }, blur: { sigma: 1.0 }, resolution: { factor: 2 }, biasField: { strength: 0.4 } },
  'mr-to-ct': {
    intensityMap: { kind: 'invert' },
    gamma: 1.3,
    noise: { sigma: 0.04 },
    blur: { sigma: 0.5 },
  },
} as const satisfies Record<string, ScannerShift>;

export type ScannerPresetName = keyof typeof SCANNER_PRESETS;
export const SCANNER_PRESET_NAMES = Object.keys(SCANNER_PRESETS) as ScannerPresetName[];

export const ScannerPresetNameSchema = z.enum(SCANNER_PRESET_NAMES as [ScannerPresetName, ...ScannerPresetName[]]);
export const ScannerShiftOrPresetSchema = z.union([ScannerPresetNameSchema, ScannerShiftSchema]);
export type ScannerShiftOrPreset = ScannerShift | ScannerPresetName;

/** Thrown for an unknown preset or an invalid shift spec. */
export class ScannerShiftError extends Error {
  readonly code = 'INVALID_SHIFT' as const;
  constructor(message: string) {
    super(message);
    this.name = 'ScannerShiftError';
  }
}

/** A preset name or a spec, validated, as a plain spec. */
export function resolveScannerShift(shift: ScannerShiftOrPreset): ScannerShift {
  if (typeof shift === 'string') {
    if (!Object.prototype.hasOwnProperty.call(SCANNER_PRESETS, shift)) {
      throw new ScannerShiftError(`unknown scanner preset '${shift}' (known: ${SCANNER_PRESET_NAMES.join(', ')})`);
    }
    return ScannerShiftSchema.parse(SCANNER_PRESETS[shift]);
  }
  const parsed = ScannerShiftSchema.safeParse(shift);
  if (!parsed.success) {
    throw new ScannerShiftError(`invalid scanner shift: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}
