#!/usr/bin/env python3
"""Prints the reference vectors of protocol/privacy/accountant.test.ts, computed by Opacus's own accountant.

Usage: python3 opacus-vectors.py PATH/TO/opacus/accountants/analysis/rdp.py
(Opacus commit 4d0ebc84; the file needs only numpy and scipy, so it runs without installing opacus.)
It reproduces RDPAccountant.DEFAULT_ALPHAS and get_noise_multiplier's bracket-and-bisect, with a tight tolerance.
"""
import importlib.util, json, sys, warnings
warnings.simplefilter("ignore")
spec = importlib.util.spec_from_file_location("opacus_rdp", sys.argv[1])
rdp = importlib.util.module_from_spec(spec); spec.loader.exec_module(rdp)
ALPHAS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))  # RDPAccountant.DEFAULT_ALPHAS

def eps(q, z, t, delta):
    e, a = rdp.get_privacy_spent(orders=ALPHAS, rdp=rdp.compute_rdp(q=q, noise_multiplier=z, steps=t, orders=ALPHAS), delta=delta)
    return float(e), float(a)

runs = [(1.0, 1.0, 50, 1e-5), (1.0, 1.1, 30, 1e-5), (1.0, 4.0, 100, 1e-5), (0.5, 1.0, 100, 1e-5), (0.3, 0.8, 40, 1e-6),
        (0.01, 1.1, 10000, 1e-5), (0.004, 1.0, 2500, 1e-5), (0.1, 2.0, 1000, 1e-5), (256 / 60000, 1.1, 14070, 1e-5),
        (0.05, 0.6, 200, 1e-5), (1e-3, 5.0, 1, 1e-5), (0.2, 10.0, 5000, 1e-6)]
per_order = [(0.01, 1.1, a) for a in (1.5, 2.0, 2.5, 3.7, 8.0, 10.9, 32.0, 63.0)] + \
            [(0.3, 0.7, a) for a in (1.1, 1.9, 4.5, 12.0)] + [(0.001, 4.0, a) for a in (1.3, 6.6, 50.0)]
out = {
  "opacusCommit": "4d0ebc84",
  "epsilon": [dict(q=q, z=z, steps=t, delta=d, epsilon=eps(q, z, t, d)[0], order=eps(q, z, t, d)[1]) for q, z, t, d in runs],
  "rdpPerStep": [dict(q=q, z=z, order=a, rdp=float(rdp.compute_rdp(q=q, noise_multiplier=z, steps=1, orders=[a])[0])) for q, z, a in per_order],
}
def calibrate(q, t, delta, target):
    lo, hi = 0.0, 10.0
    while eps(q, hi, t, delta)[0] > target: hi *= 2
    while hi - lo > 1e-10 * hi:
        mid = (lo + hi) / 2
        if eps(q, mid, t, delta)[0] <= target: hi = mid
        else: lo = mid
    return hi
out["calibrate"] = [dict(q=q, steps=t, delta=d, epsilon=e, z=calibrate(q, t, d, e)) for q, t, d, e in
                    [(1.0, 50, 1e-5, 8.0), (1.0, 50, 1e-5, 3.0), (1.0, 50, 1e-5, 1.0), (0.01, 5000, 1e-5, 2.0), (0.1, 300, 1e-6, 0.5)]]
print(json.dumps(out, indent=1))
