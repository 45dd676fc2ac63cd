/**
 * Derivative-free minimisation by the Nelder-Mead simplex method, in the standard form of Lagarias, Reeds, Wright &
 * Wright, "Convergence properties of the Nelder-Mead simplex method in low dimensions", SIAM J. Optim. 9(1), 1998,
 * sec. 2 (reflection ρ = 1, expansion χ = 2, contraction γ = ½, shrink σ = ½; outside and inside contraction).
 * Used by the bias-field correction (bias-correction.ts), whose entropy objective has no useful gradient (histogram
 * entropy is piecewise smooth in the field coefficients at best). Written here rather than taken from npm: the one
 * package for it (`fmin`, 0.0.4) is untyped, unmaintained since 2016 and pulls in a plotting dependency.
 */
import { AdaptError } from './adapt-error.ts';

export interface NelderMeadOptions {
  /** Initial simplex: x0 and x0 + step·e_i for each coordinate i. Default 0.1. */
  readonly step?: number;
  /** Objective evaluations allowed (the search stops after the iteration that reaches it). Default 200·dim. */
  readonly maxEvaluations?: number;
  /** Stop when max |f_i - f_best| <= fTol and max |x_i - x_best|_∞ <= xTol over the simplex. Defaults 1e-6, 1e-4. */
  readonly fTol?: number;
  readonly xTol?: number;
}

export interface NelderMeadResult {
  readonly x: number[];
  readonly f: number;
  readonly evaluations: number;
  readonly converged: boolean;
}

/**
 * The minimiser of `f` found from `x0`.
 * @example
 * nelderMead(([a, b]) => (a - 1) ** 2 + (b + 2) ** 2, [0, 0]).x; // ≈ [1, -2]
 */
export function nelderMead(f: (x: readonly number[]) => number, x0: readonly number[], opts: NelderMeadOptions = {}): NelderMeadResult {
  const n = x0.length;
  if (n < 1) throw new AdaptError('BAD_OPTION', 'nelderMead needs at least one coordinate');
  const step = opts.step ?? 0.1;
  const maxEvaluations = opts.maxEvaluations ?? 200 * n;
  const fTol = opts.fTol ?? 1e-6;
  const xTol = opts.xTol ?? 1e-4;
  if (!(step > 0) || !(maxEvaluations >= 1) || !(fTol >= 0) || !(xTol >= 0)) throw new AdaptError('BAD_OPTION', 'nelderMead: step > 0, maxEvaluations >= 1, fTol and xTol >= 0 required');
  let evaluations = 0;
  // A non-finite objective counts as +∞ so that the simplex moves away from it.
  const value = (x: readonly number[]): number => {
    evaluations++;
    const v = f(x);
    return Number.isFinite(v) ? v : Infinity;
  };
  const simplex: { x: number[]; f: number }[] = [{ x: [...x0], f: value(x0) }];
  for (let i = 0; i < n; i++) {
    const x = [...x0];
    x[i] += step;
    simplex.push({ x, f: value(x) });
  }
  const along = (c: readonly number[], worst: readonly number[], t: number): number[] => c.map((ci, j) => ci + t * (ci - worst[j]));
  let converged = false;
  while (evaluations < maxEvaluations) {
    simplex.sort((a, b) => a.f - b.f);
    const best = simplex[0];
    const fSpread = simplex[n].f - best.f;
    let xSpread = 0;
    for (let i = 1; i <= n; i++) for (let j = 0; j < n; j++) xSpread = Math.max(xSpread, Math.abs(simplex[i].x[j] - best.x[j]));
    if (fSpread <= fTol && xSpread <= xTol) {
      converged = true;
      break;
    }
    // Centroid of the n best vertices.
    const c = new Array<number>(n).fill(0);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) c[j] += simplex[i].x[j] / n;
    const worst = simplex[n];
    const xr = along(c, worst.x, 1);
    const fr = value(xr);
    if (fr < best.f) {
      const xe = along(c, worst.x, 2);
      const fe = value(xe);
      simplex[n] = fe < fr ? { x: xe, f: fe } : { x: xr, f: fr };
      continue;
    }
    if (fr < simplex[n - 1].f) {
      simplex[n] = { x: xr, f: fr };
      continue;
    }
    // Contraction: outside when the reflected point beats the worst vertex, else inside.
    const outside = fr < worst.f;
    const xc = along(c, worst.x, outside ? 0.5 : -0.5);
    const fc = value(xc);
    if (fc < (outside ? fr : worst.f)) {
      simplex[n] = { x: xc, f: fc };
      continue;
    }
    // Shrink towards the best vertex.
    for (let i = 1; i <= n; i++) {
      const x = simplex[i].x.map((v, j) => best.x[j] + 0.5 * (v - best.x[j]));
      simplex[i] = { x, f: value(x) };
    }
  }
  simplex.sort((a, b) => a.f - b.f);
  return { x: simplex[0].x, f: simplex[0].f, evaluations, converged };
}
