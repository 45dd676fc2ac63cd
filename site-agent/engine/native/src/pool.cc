#include "pool.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "thread-pool.h"

namespace fedsfda {

void maxpool_forward(const float* x, float* y, const PoolParams& p) {
  parallel_for_work(static_cast<long>(p.N) * p.H * p.W * p.C, p.N * p.OH, [&](int t, int) {
    const int n = t / p.OH, oy = t % p.OH;
    for (int ox = 0; ox < p.OW; ++ox) {
      float* o = y + ((static_cast<size_t>(n) * p.OH + oy) * p.OW + ox) * p.C;
      for (int c = 0; c < p.C; ++c) o[c] = -std::numeric_limits<float>::infinity();
      for (int ky = 0; ky < p.FH; ++ky) {
        const int iy = oy * p.SH + ky * p.DH - p.PT;
        if (iy < 0 || iy >= p.H) continue;
        for (int kx = 0; kx < p.FW; ++kx) {
          const int ix = ox * p.SW + kx * p.DW - p.PL;
          if (ix < 0 || ix >= p.W) continue;
          const float* in = x + ((static_cast<size_t>(n) * p.H + iy) * p.W + ix) * p.C;
          for (int c = 0; c < p.C; ++c) o[c] = in[c] > o[c] ? in[c] : o[c];
        }
      }
    }
  });
}

void maxpool_backward(const float* dy, const float* x, float* dx, const PoolParams& p) {
  // One task per image: windows of different images never share input pixels, so no write conflicts.
  parallel_for_work(static_cast<long>(p.N) * p.H * p.W * p.C, p.N, [&](int n, int) {
    float* dxn = dx + static_cast<size_t>(n) * p.H * p.W * p.C;
    std::memset(dxn, 0, sizeof(float) * p.H * p.W * p.C);
    std::vector<float> best(p.C);
    std::vector<long> arg(p.C);
    for (int oy = 0; oy < p.OH; ++oy)
      for (int ox = 0; ox < p.OW; ++ox) {
        for (int c = 0; c < p.C; ++c) { best[c] = -std::numeric_limits<float>::infinity(); arg[c] = -1; }
        for (int ky = 0; ky < p.FH; ++ky) {
          const int iy = oy * p.SH + ky * p.DH - p.PT;
          if (iy < 0 || iy >= p.H) continue;
          for (int kx = 0; kx < p.FW; ++kx) {
            const int ix = ox * p.SW + kx * p.DW - p.PL;
            if (ix < 0 || ix >= p.W) continue;
            const long base = (static_cast<long>(iy) * p.W + ix) * p.C;
            const float* in = x + static_cast<size_t>(n) * p.H * p.W * p.C + base;
            for (int c = 0; c < p.C; ++c)
              if (in[c] > best[c]) { best[c] = in[c]; arg[c] = base + c; }
          }
        }
        const float* g = dy + ((static_cast<size_t>(n) * p.OH + oy) * p.OW + ox) * p.C;
        for (int c = 0; c < p.C; ++c)
          if (arg[c] >= 0) dxn[arg[c]] += g[c];
      }
  });
}

}  // namespace fedsfda
