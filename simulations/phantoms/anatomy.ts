/**
 * Procedural anatomy: a seeded, smoothly deformed 3D arrangement of nested and neighbouring structures,
 * rendered slice by slice. The layout mimics a cardiac short-axis view (the MR->CT benchmark of the
 * source-free papers): a body outline, an organ wall ring (class 1) around a cavity (class 2), a neighbouring
 * chamber-like blob (class 3) and, for K > 4, smaller blobs nested in the neighbour (even classes) or beside
 * the organ (odd classes), up to K = 16.
 *
 * Coordinates are normalised to [-1, 1] on every axis. Intensities are noise-free tissue values in [0, 1]
 * with a low-frequency texture; scanner effects are added later by `applyScannerShift`.
 */
import type { Rng } from '../../protocol/common/index.ts';

/** An ellipsoid rotated in-plane by `angle` (elongated in x/y, axis-aligned in z). */
interface Ellipsoid {
  cx: number;
  cy: number;
  cz: number;
  rx: number;
  ry: number;
  rz: number;
  cos: number;
  sin: number;
}

/** One sinusoidal component of the smooth displacement field (the "elastic-ish" deformation). */
interface WarpTerm {
  kx: number;
  ky: number;
  kz: number;
  phase: number;
  ax: number;
  ay: number;
}

/** Tissue indices into `PhantomAnatomy.tissue`. 0 air, 1 body, 2 wall, 3 cavity, 4 neighbour, 5.. extras. */
const T_AIR = 0;
const T_BODY = 1;
const T_WALL = 2;
const T_CAVITY = 3;
const T_NEIGHBOUR = 4;
const T_EXTRA0 = 5;

/** Base tissue intensities (before per-case jitter): distinct, so that contrast alone is informative. */
const BASE_TISSUE = [0.02, 0.4, 0.82, 0.15, 0.6, 0.95, 0.28, 0.7, 0.5, 0.88, 0.22, 0.75, 0.33, 0.66, 0.1, 0.55, 0.92];

const TEXTURE_GRID = 7;

export interface PhantomAnatomy {
  readonly numClasses: number;
  readonly body: Ellipsoid;
  readonly organ: Ellipsoid;
  /** Fraction of the organ radius taken by the wall ring (the cavity is the rest). */
  readonly wallFraction: number;
  readonly neighbour: Ellipsoid;
  /** Classes 4.. (only when numClasses > 4): even ones nested in the neighbour, odd ones free in the body. */
  readonly extras: Ellipsoid[];
  readonly warp: WarpTerm[];
  /** Intensity per tissue index. */
  readonly tissue: Float32Array;
  /** Texture amplitude per tissue index. */
  readonly textureAmp: Float32Array;
  /** Coarse TEXTURE_GRID^3 random lattice, trilinearly interpolated. */
  readonly texture: Float32Array;
  /**
   * Which classes this case contains (index = class; absent only with `classPresence`): an absent structure is
   * rendered as surrounding body tissue and labelled background, as when it is outside the field of view or resected.
   */
  readonly present?: readonly boolean[];
}

/** Largest class count the phantom supports (background + wall + cavity + neighbour + 12 extra blobs). */
export const MAX_PHANTOM_CLASSES = 16;

function ellipsoid(cx: number, cy: number, cz: number, rx: number, ry: number, rz: number, angle: number): Ellipsoid {
  return { cx, cy, cz, rx, ry, rz, cos: Math.cos(angle), sin: Math.sin(angle) };
}

/** Normalised squared radius: < 1 inside. */
function level(e: Ellipsoid, x: number, y: number, z: number): number {
  const dx = x - e.cx;
  const dy = y - e.cy;
  const dz = z - e.cz;
  const a = (dx * e.cos + dy * e.sin) / e.rx;
  const b = (-dx * e.sin + dy * e.cos) / e.ry;
  const c = dz / e.rz;
  return a * a + b * b + c * c;
}

/**
 * Draws one case's anatomy. All randomness comes from `rng`, so a case is a pure function of its seed.
 * `classPresence[k - 1]` is the probability that foreground class k is in the case (label skew across cases);
 * it is drawn after everything else, so cases without it are unchanged.
 */
export function sampleAnatomy(rng: Rng, numClasses: number, classPresence?: readonly number[]): PhantomAnatomy {
  // The body is a cylinder in z (rz huge) filling most of the field of view.
  const body = ellipsoid(rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05), 0, rng.uniform(0.78, 0.9), rng.uniform(0.62, 0.8), 1e6, rng.uniform(-0.2, 0.2));
  const ro = rng.uniform(0.3, 0.4);
  const elong = rng.uniform(0.8, 1.25);
  const organ = ellipsoid(
    body.cx + rng.uniform(-0.15, 0.15),
    body.cy + rng.uniform(-0.12, 0.12),
    rng.uniform(-0.1, 0.1),
    ro * elong,
    ro / elong,
    rng.uniform(0.8, 1.0),
    rng.uniform(0, Math.PI),
  );
  const wallFraction = rng.uniform(0.28, 0.42);
  // The neighbour touches the organ: its centre sits at the organ's edge plus most of its own radius.
  const rn = rng.uniform(0.18, 0.26);
  const phi = rng.uniform(0, 2 * Math.PI);
  const dist = ro + rn * rng.uniform(0.7, 1.0);
  const neighbour = ellipsoid(
    organ.cx + dist * Math.cos(phi),
    organ.cy + dist * Math.sin(phi),
    rng.uniform(-0.2, 0.2),
    rn * rng.uniform(0.8, 1.3),
    rn * rng.uniform(0.8, 1.3),
    rng.uniform(0.6, 0.9),
    rng.uniform(0, Math.PI),
  );
  const extras: Ellipsoid[] = [];
  const nExtra = Math.max(0, numClasses - 4);
  const nNested = Math.ceil(nExtra / 2);
  const nFree = nExtra - nNested;
  let nestedIdx = 0;
  let freeIdx = 0;
  for (let c = 4; c < numClasses; c++) {
    if (c % 2 === 0) {
      // Nested inside the neighbour (a structure within a structure); several are spread around its centre.
      const r = (rn * rng.uniform(0.3, 0.45)) / Math.sqrt(nNested);
      const a = (2 * Math.PI * nestedIdx++) / nNested + rng.uniform(-0.3, 0.3);
      const off = nNested > 1 ? 0.45 * rn : rng.uniform(0, 0.3) * rn;
      extras.push(ellipsoid(neighbour.cx + off * Math.cos(a), neighbour.cy + off * Math.sin(a), neighbour.cz, r, r * rng.uniform(0.8, 1.2), neighbour.rz * 0.7, 0));
    } else {
      // Free-standing, fanned out on the side of the organ opposite the neighbour.
      const r = rng.uniform(0.07, 0.11) / Math.sqrt(Math.max(1, nFree / 2));
      const a = phi + Math.PI + (nFree > 1 ? ((freeIdx++ / (nFree - 1)) - 0.5) * 2.4 : rng.uniform(-0.6, 0.6));
      const d = ro + r + rng.uniform(0.05, 0.15);
      extras.push(ellipsoid(organ.cx + d * Math.cos(a), organ.cy + d * Math.sin(a), rng.uniform(-0.2, 0.2), r, r * rng.uniform(0.8, 1.3), rng.uniform(0.4, 0.7), 0));
    }
  }
  const warp: WarpTerm[] = [];
  for (let k = 0; k < 3; k++) {
    warp.push({
      kx: rng.uniform(1.5, 4.5) * (rng.next() < 0.5 ? -1 : 1),
      ky: rng.uniform(1.5, 4.5) * (rng.next() < 0.5 ? -1 : 1),
      kz: rng.uniform(0.5, 2),
      phase: rng.uniform(0, 2 * Math.PI),
      ax: rng.uniform(-0.035, 0.035),
      ay: rng.uniform(-0.035, 0.035),
    });
  }
  const tissue = new Float32Array(BASE_TISSUE.length);
  for (let t = 0; t < tissue.length; t++) tissue[t] = Math.min(1, Math.max(0, BASE_TISSUE[t] + rng.uniform(-0.04, 0.04)));
  const textureAmp = new Float32Array(BASE_TISSUE.length);
  for (let t = 0; t < textureAmp.length; t++) textureAmp[t] = t === T_AIR ? 0.005 : rng.uniform(0.02, 0.05);
  const texture = new Float32Array(TEXTURE_GRID * TEXTURE_GRID * TEXTURE_GRID);
  for (let i = 0; i < texture.length; i++) texture[i] = rng.normal();
  const present = classPresence ? [true, ...classPresence.map((p) => rng.next() < p)] : undefined;
  return { numClasses, body, organ, wallFraction, neighbour, extras, warp, tissue, textureAmp, texture, ...(present ? { present } : {}) };
}

/** Trilinear lookup in the coarse texture lattice at normalised coordinates. */
function textureAt(tex: Float32Array, x: number, y: number, z: number): number {
  const g = TEXTURE_GRID - 1;
  const fx = Math.min(g - 1e-6, Math.max(0, ((x + 1) / 2) * g));
  const fy = Math.min(g - 1e-6, Math.max(0, ((y + 1) / 2) * g));
  const fz = Math.min(g - 1e-6, Math.max(0, ((z + 1) / 2) * g));
  const x0 = Math.floor(fx);
  const y0 = Math.floor(fy);
  const z0 = Math.floor(fz);
  const tx = fx - x0;
  const ty = fy - y0;
  const tz = fz - z0;
  const G = TEXTURE_GRID;
  const i000 = x0 + G * (y0 + G * z0);
  const c00 = tex[i000] + (tex[i000 + 1] - tex[i000]) * tx;
  const c10 = tex[i000 + G] + (tex[i000 + G + 1] - tex[i000 + G]) * tx;
  const i001 = i000 + G * G;
  const c01 = tex[i001] + (tex[i001 + 1] - tex[i001]) * tx;
  const c11 = tex[i001 + G] + (tex[i001 + G + 1] - tex[i001 + G]) * tx;
  const c0 = c00 + (c10 - c00) * ty;
  const c1 = c01 + (c11 - c01) * ty;
  return c0 + (c1 - c0) * tz;
}

/**
 * Renders the axial slice at normalised height `z` on an h x w grid (row = y, column = x) into
 * `intensity[offset..]` (noise-free, [0,1] plus texture) and `label[offset..]`.
 */
export function renderAnatomySlice(
  a: PhantomAnatomy,
  z: number,
  h: number,
  w: number,
  intensity: Float32Array,
  label: Uint8Array,
  offset: number,
): void {
  const K = a.numClasses;
  const cavityScale = 1 / ((1 - a.wallFraction) * (1 - a.wallFraction));
  for (let r = 0; r < h; r++) {
    const y0 = (2 * (r + 0.5)) / h - 1;
    for (let c = 0; c < w; c++) {
      const x0 = (2 * (c + 0.5)) / w - 1;
      // Smooth displacement: evaluating the shapes at warped coordinates deforms them consistently in 3D.
      let x = x0;
      let y = y0;
      for (const t of a.warp) {
        const s = Math.sin(t.kx * x0 + t.ky * y0 + t.kz * z + t.phase);
        x += t.ax * s;
        y += t.ay * s;
      }
      let tissue = T_AIR;
      let cls = 0;
      if (level(a.body, x, y, z) < 1) tissue = T_BODY;
      if (tissue !== T_AIR) {
        for (let e = 0; e < a.extras.length; e++) {
          // Odd extras (free) first, so the neighbour paints over them; even (nested) ones after the neighbour.
          if (e % 2 === 1 && level(a.extras[e], x, y, z) < 1) {
            tissue = T_EXTRA0 + e;
            cls = 4 + e;
          }
        }
        if (level(a.neighbour, x, y, z) < 1) {
          tissue = T_NEIGHBOUR;
          cls = K > 3 ? 3 : 0;
          for (let e = 0; e < a.extras.length; e += 2) {
            if (level(a.extras[e], x, y, z) < 1) {
              tissue = T_EXTRA0 + e;
              cls = 4 + e;
            }
          }
        }
        const lo = level(a.organ, x, y, z);
        if (lo < 1) {
          if (lo * cavityScale < 1) {
            tissue = T_CAVITY;
            cls = K > 2 ? 2 : 0;
          } else {
            tissue = T_WALL;
            cls = 1;
          }
        }
      }
      if (cls !== 0 && a.present && !a.present[cls]) {
        tissue = T_BODY;
        cls = 0;
      }
      const i = offset + r * w + c;
      intensity[i] = a.tissue[tissue] + a.textureAmp[tissue] * textureAt(a.texture, x0, y0, z);
      label[i] = cls;
    }
  }
}
