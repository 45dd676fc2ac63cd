#include "conv.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "gemm.h"
#include "thread-pool.h"

namespace fedsfda {
namespace {

constexpr int kRowsFwd = 16 * kMR;  // im2col rows per task: the patch stays in L2
constexpr int kRowsDw = 256;        // reduction rows per task for the filter gradient

// One im2col row for output pixel (n, oy, ox): K = FH*FW*Cin values, zeros where the window is in padding.
inline void im2col_row(const float* x, const ConvParams& p, int n, int oy, int ox, float* o) {
  for (int ky = 0; ky < p.FH; ++ky) {
    const int iy = oy * p.SH + ky * p.DH - p.PT;
    for (int kx = 0; kx < p.FW; ++kx) {
      const int ix = ox * p.SW + kx * p.DW - p.PL;
      float* dst = o + (ky * p.FW + kx) * p.Cin;
      if (iy < 0 || iy >= p.H || ix < 0 || ix >= p.W) {
        std::memset(dst, 0, sizeof(float) * p.Cin);
      } else {
        std::memcpy(dst, x + ((static_cast<size_t>(n) * p.H + iy) * p.W + ix) * p.Cin, sizeof(float) * p.Cin);
      }
    }
  }
}

// One gathered dy row for input pixel (n, iy, ix): FH*FW*Cout values; dy[n,oy,ox,:] for the output pixels
// whose window covers (iy, ix) at tap (ky, kx), zeros otherwise. Turns the transposed convolution into a
// gather (no write conflicts between threads).
inline void gather_dy_row(const float* dy, const ConvParams& p, int n, int iy, int ix, float* o) {
  for (int ky = 0; ky < p.FH; ++ky) {
    const int ty = iy + p.PT - ky * p.DH;
    const bool vy = ty >= 0 && ty % p.SH == 0 && ty / p.SH < p.OH;
    for (int kx = 0; kx < p.FW; ++kx) {
      const int tx = ix + p.PL - kx * p.DW;
      float* dst = o + (ky * p.FW + kx) * p.Cout;
      if (vy && tx >= 0 && tx % p.SW == 0 && tx / p.SW < p.OW) {
        const int oy = ty / p.SH, ox = tx / p.SW;
        std::memcpy(dst, dy + ((static_cast<size_t>(n) * p.OH + oy) * p.OW + ox) * p.Cout, sizeof(float) * p.Cout);
      } else {
        std::memset(dst, 0, sizeof(float) * p.Cout);
      }
    }
  }
}

struct PerThread {
  std::vector<std::unique_ptr<Scratch>> bufs;
  PerThread(int threads, size_t count) {
    for (int t = 0; t < threads; ++t) bufs.emplace_back(new Scratch(count));
  }
  float* get(int t) { return bufs[t]->p; }
};

}  // namespace

void conv2d_forward(const float* x, const float* w, float* y, const ConvParams& p, const float* bias, bool relu) {
  const int K = p.FH * p.FW * p.Cin;
  const int M = p.N * p.OH * p.OW;
  Scratch bp(static_cast<size_t>(K) * round_up(p.Cout, kNR));
  pack_b(w, K, p.Cout, p.Cout, 1, bp.p);  // HWIO is already K x Cout
  const int tasks = (M + kRowsFwd - 1) / kRowsFwd;
  PerThread patch(pool_threads(), static_cast<size_t>(kRowsFwd) * K);
  parallel_for(tasks, [&](int t, int th) {
    const int r0 = t * kRowsFwd;
    const int rows = std::min(kRowsFwd, M - r0);
    float* a = patch.get(th);
    for (int r = 0; r < round_up(rows, kMR); ++r) {
      float* o = a + static_cast<size_t>(r) * K;
      if (r >= rows) { std::memset(o, 0, sizeof(float) * K); continue; }
      const int m = r0 + r;
      const int ox = m % p.OW, oy = (m / p.OW) % p.OH, n = m / (p.OW * p.OH);
      im2col_row(x, p, n, oy, ox, o);
    }
    gemm_block(a, K, rows, K, bp.p, p.Cout, y + static_cast<size_t>(r0) * p.Cout, p.Cout, false, bias, relu);
  });
}

void conv2d_backprop_input(const float* dy, const float* w, float* dx, const ConvParams& p) {
  const int F = p.FH * p.FW;
  const int K = F * p.Cout;
  const int M = p.N * p.H * p.W;
  const int Np = round_up(p.Cin, kNR);
  // B'[(f, co), ci] = w[f, ci, co]: per-tap transpose of the filter.
  Scratch bp(static_cast<size_t>(K) * Np);
  for (int f = 0; f < F; ++f)
    for (int co = 0; co < p.Cout; ++co) {
      float* o = bp.p + static_cast<size_t>(f * p.Cout + co) * Np;
      for (int ci = 0; ci < p.Cin; ++ci) o[ci] = w[(static_cast<size_t>(f) * p.Cin + ci) * p.Cout + co];
      for (int ci = p.Cin; ci < Np; ++ci) o[ci] = 0.f;
    }
  const int tasks = (M + kRowsFwd - 1) / kRowsFwd;
  PerThread patch(pool_threads(), static_cast<size_t>(kRowsFwd) * K);
  parallel_for(tasks, [&](int t, int th) {
    const int r0 = t * kRowsFwd;
    const int rows = std::min(kRowsFwd, M - r0);
    float* a = patch.get(th);
    for (int r = 0; r < round_up(rows, kMR); ++r) {
      float* o = a + static_cast<size_t>(r) * K;
      if (r >= rows) { std::memset(o, 0, sizeof(float) * K); continue; }
      const int m = r0 + r;
      const int ix = m % p.W, iy = (m / p.W) % p.H, n = m / (p.W * p.H);
      gather_dy_row(dy, p, n, iy, ix, o);
    }
    gemm_block(a, K, rows, K, bp.p, p.Cin, dx + static_cast<size_t>(r0) * p.Cin, p.Cin, false, nullptr, false);
  });
}

void conv2d_backprop_filter(const float* x, const float* dy, float* dw, const ConvParams& p) {
  // dW^T (Cout x K) = dy^T (Cout x M) * col (M x K), reduced over row blocks of M. Computing the transpose
  // lets the im2col rows be the packed B panel as they are (no transposition of the big K x M matrix);
  // only the small dy block (rows x Cout) is transposed.
  const int K = p.FH * p.FW * p.Cin;
  const int Kp = round_up(K, kNR);
  const int M = p.N * p.OH * p.OW;
  const int Cp = round_up(p.Cout, kMR);
  const int threads = pool_threads();
  const int tasks = (M + kRowsDw - 1) / kRowsDw;
  // Each thread reduces its row blocks into a private Cout x Kp accumulator (no atomics), summed at the end.
  PerThread acc(threads, static_cast<size_t>(p.Cout) * Kp);
  PerThread col(threads, static_cast<size_t>(kRowsDw) * Kp);
  PerThread dyT(threads, static_cast<size_t>(Cp) * kRowsDw);
  for (int t = 0; t < threads; ++t) {
    std::memset(acc.get(t), 0, sizeof(float) * p.Cout * Kp);
    std::memset(dyT.get(t), 0, sizeof(float) * Cp * kRowsDw);  // rows Cout..Cp stay zero
  }
  std::vector<char> used(threads, 0);
  parallel_for(tasks, [&](int t, int th) {
    used[th] = 1;
    const int r0 = t * kRowsDw;
    const int rows = std::min(kRowsDw, M - r0);
    float* cb = col.get(th);
    for (int r = 0; r < rows; ++r) {
      const int m = r0 + r;
      const int ox = m % p.OW, oy = (m / p.OW) % p.OH, n = m / (p.OW * p.OH);
      float* o = cb + static_cast<size_t>(r) * Kp;
      im2col_row(x, p, n, oy, ox, o);
      for (int k = K; k < Kp; ++k) o[k] = 0.f;
    }
    float* a = dyT.get(th);
    const float* d = dy + static_cast<size_t>(r0) * p.Cout;
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < p.Cout; ++c) a[static_cast<size_t>(c) * kRowsDw + r] = d[static_cast<size_t>(r) * p.Cout + c];
    gemm_block(a, kRowsDw, p.Cout, rows, cb, K, acc.get(th), Kp, true, nullptr, false);
  });
  for (int t = 1; t < threads; ++t) {
    if (!used[t]) continue;
    float* a0 = acc.get(0);
    const float* a = acc.get(t);
    for (size_t i = 0; i < static_cast<size_t>(p.Cout) * Kp; ++i) a0[i] += a[i];
  }
  const float* a0 = acc.get(0);
  for (int k = 0; k < K; ++k)
    for (int c = 0; c < p.Cout; ++c) dw[static_cast<size_t>(k) * p.Cout + c] = a0[static_cast<size_t>(c) * Kp + k];
}

}  // namespace fedsfda
