/**
 * log(erfc(x)) accurate to double precision for every real x, including far in the upper tail where erfc(x)
 * underflows (the fractional-order RDP series needs log erfc at arguments up to several hundred).
 *
 * Algorithm: W. J. Cody's rational approximations as implemented in FreeBSD msun `s_erf.c` (Sun Microsystems,
 * 1993; the same coefficients as @stdlib/math-base-special-erfc, Apache-2.0). For |x| >= 1.25 msun writes
 *   erfc(x) = exp(-z^2 - 0.5625) * exp((z - x)(z + x) + R(1/x^2)/S(1/x^2)) / x,   z = x with its low 32 bits zeroed,
 * and we keep that product in log space instead of exponentiating, so the tail never underflows. The R/S
 * rational in 1/x^2 tends to a constant as x grows, so the form holds beyond msun's cut-off at 28.
 * TF Privacy and Opacus compute the same quantity as log(2) + scipy.special.log_ndtr(-x * sqrt(2)).
 */

const ERX = 8.45062911510467529297e-1;

function polyPP(x: number): number {
  return -0.3250421072470015 + x * (-0.02848174957559851 + x * (-0.005770270296489442 + x * -0.000023763016656650163));
}
function polyQQ(x: number): number {
  return (
    0.39791722395915535 +
    x * (0.0650222499887673 + x * (0.005081306281875766 + x * (0.00013249473800432164 + x * -0.000003960228278775368)))
  );
}
function polyPA(x: number): number {
  return (
    0.41485611868374833 +
    x *
      (-0.3722078760357013 +
        x * (0.31834661990116175 + x * (-0.11089469428239668 + x * (0.035478304325618236 + x * -0.002166375594868791))))
  );
}
function polyQA(x: number): number {
  return (
    0.10642088040084423 +
    x * (0.540397917702171 + x * (0.07182865441419627 + x * (0.12617121980876164 + x * (0.01363708391202905 + x * 0.011984499846799107))))
  );
}
function polyRA(x: number): number {
  return (
    -0.6938585727071818 +
    x *
      (-10.558626225323291 +
        x * (-62.375332450326006 + x * (-162.39666946257347 + x * (-184.60509290671104 + x * (-81.2874355063066 + x * -9.814329344169145)))))
  );
}
function polySA(x: number): number {
  return (
    19.651271667439257 +
    x *
      (137.65775414351904 +
        x *
          (434.56587747522923 +
            x * (645.3872717332679 + x * (429.00814002756783 + x * (108.63500554177944 + x * (6.570249770319282 + x * -0.0604244152148581))))))
  );
}
function polyRB(x: number): number {
  return (
    -0.799283237680523 +
    x * (-17.757954917754752 + x * (-160.63638485582192 + x * (-637.5664433683896 + x * (-1025.0951316110772 + x * -483.5191916086514))))
  );
}
function polySB(x: number): number {
  return (
    30.33806074348246 +
    x *
      (325.7925129965739 +
        x * (1536.729586084437 + x * (3199.8582195085955 + x * (2553.0504064331644 + x * (474.52854120695537 + x * -22.44095244658582)))))
  );
}

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
const LOW_WORD = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 0 : 1;

/** x with the low 32 bits of its IEEE-754 representation set to zero (msun's "pseudo-single" z). */
function dropLowWord(x: number): number {
  f64[0] = x;
  u32[LOW_WORD] = 0;
  return f64[0];
}

/** log(erfc(ax)) for ax >= 1.25 via the msun tail form, never underflowing. */
function logErfcTail(ax: number): number {
  const s = 1 / (ax * ax);
  const ratio = ax < 1 / 0.35 ? (-9.86494403484714822705e-3 + s * polyRA(s)) / (1 + s * polySA(s)) : (-9.86494292470009928597e-3 + s * polyRB(s)) / (1 + s * polySB(s));
  const z = dropLowWord(ax);
  return -(z * z) - 0.5625 + ((z - ax) * (z + ax) + ratio) - Math.log(ax);
}

/** erfc(x) for finite x (msun `erfc`); used where the value itself, not its log, is wanted. */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x === Infinity) return 0;
  if (x === -Infinity) return 2;
  const ax = Math.abs(x);
  if (ax < 0.84375) {
    if (ax < 2 ** -56) return 1 - x;
    const z = x * x;
    const y = (1.28379167095512558561e-1 + z * polyPP(z)) / (1 + z * polyQQ(z));
    if (x < 0.25) return 1 - (x + x * y);
    return 0.5 - (x * y + (x - 0.5));
  }
  if (ax < 1.25) {
    const s = ax - 1;
    const pq = (-2.36211856075265944077e-3 + s * polyPA(s)) / (1 + s * polyQA(s));
    return x < 0 ? 1 + ERX + pq : 1 - ERX - pq;
  }
  if (x < -6) return 2;
  const tail = Math.exp(logErfcTail(ax));
  return x < 0 ? 2 - tail : tail;
}

/** log(erfc(x)) for every real x; -Infinity only at x = +Infinity. */
export function logErfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x >= 1.25) return logErfcTail(x);
  return Math.log(erfc(x));
}
