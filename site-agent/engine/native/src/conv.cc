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
// Fixed number of partial accumulators for the filter gradient's reduction over M (at most this many
// threads share that kernel). A constant, not the thread count, so results do not depend on the pool size.
constexpr int kDwGroups = 8;

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

namespace {

// Input gradient when the windows tile the input without overlap (stride == filter size, no dilation or
// padding): the 2x2 stride-2 transposed convolution of U-Net upsampling runs here. Every dx pixel then
// receives exactly one tap, so dx's 2x2 block under dy pixel m is the GEMM row dy[m, :] x B with
// B[co, (f, ci)] = w[f, ci, co], scattered to the block's pixels. The general gather below would multiply
// FH*FW-1 zero taps per pixel (4x the FLOPs for 2x2 stride 2).
void backprop_input_tiled(const float* dy, const float* w, float* dx, const ConvParams& p) {
  const int F = p.FH * p.FW;
  const int N2 = F * p.Cin;
  const int M = p.N * p.OH * p.OW;  // dy pixels
  Scratch bp(static_cast<size_t>(p.Cout) * round_up(N2, kNR));
  pack_b(w, p.Cout, N2, 1, p.Cout, bp.p);  // element (co, f*Cin + ci) is w[(f*Cin + ci)*Cout + co]
  // Pixels no window reaches (input larger than OH*SH x OW*SW with 'valid' padding) get zero gradient.
  if (p.H != p.OH * p.SH || p.W != p.OW * p.SW) std::memset(dx, 0, sizeof(float) * p.N * p.H * p.W * p.Cin);
  const int tasks = (M + kRowsFwd - 1) / kRowsFwd;
  PerThread ablk(pool_threads(), static_cast<size_t>(kRowsFwd) * p.Cout);
  PerThread out(pool_threads(), static_cast<size_t>(kRowsFwd) * N2);
  parallel_for(tasks, [&](int t, int th) {
    const int r0 = t * kRowsFwd;
    const int rows = std::min(kRowsFwd, M - r0);
    float* a = ablk.get(th);
    // A copy padded to whole micro-tiles (gemm_block reads round_up(rows, kMR) rows).
    std::memcpy(a, dy + static_cast<size_t>(r0) * p.Cout, sizeof(float) * rows * p.Cout);
    std::memset(a + static_cast<size_t>(rows) * p.Cout, 0, sizeof(float) * (round_up(rows, kMR) - rows) * p.Cout);
    float* c = out.get(th);
    gemm_block(a, p.Cout, rows, p.Cout, bp.p, N2, c, N2, false, nullptr, false);
    for (int r = 0; r < rows; ++r) {
      const int m = r0 + r;
      const int ox = m % p.OW, oy = (m / p.OW) % p.OH, n = m / (p.OW * p.OH);
      for (int ky = 0; ky < p.FH; ++ky)
        for (int kx = 0; kx < p.FW; ++kx) {
          const size_t pix = (static_cast<size_t>(n) * p.H + oy * p.SH + ky) * p.W + ox * p.SW + kx;
          std::memcpy(dx + pix * p.Cin, c + static_cast<size_t>(r) * N2 + (ky * p.FW + kx) * p.Cin, sizeof(float) * p.Cin);
        }
    }
  });
}

}  // namespace

void conv2d_backprop_input(const float* dy, const float* w, float* dx, const ConvParams& p) {
  if (p.SH == p.FH && p.SW == p.FW && p.DH == 1 && p.DW == 1 && p.PT == 0 && p.PL == 0 && p.FH * p.FW > 1 &&
      p.OH * p.SH <= p.H && p.OW * p.SW <= p.W) {
    backprop_input_tiled(dy, w, dx, p);
    return;
  }
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
  //
  // Determinism: the reduction over M is the only float sum here whose order could depend on scheduling.
  // The row blocks are split into a fixed number of contiguous groups (depends on M only, not on the
  // thread count or on which thread runs what); each group sums its blocks in block order into its own
  // accumulator, and the groups are added in group order. So dW is bit-identical across runs, thread
  // counts, and the serial fallback of parallel_for.
  const int K = p.FH * p.FW * p.Cin;
  const int Kp = round_up(K, kNR);
  const int M = p.N * p.OH * p.OW;
  const int Cp = round_up(p.Cout, kMR);
  const int threads = pool_threads();
  const int tasks = (M + kRowsDw - 1) / kRowsDw;
  if (tasks == 0) {
    std::memset(dw, 0, sizeof(float) * K * p.Cout);
    return;
  }
  const int groups = std::min(tasks, kDwGroups);
  const size_t acc_n = static_cast<size_t>(p.Cout) * Kp;
  Scratch acc(static_cast<size_t>(groups) * acc_n);
  // Scratch per thread: fully rewritten by every block, so sharing it across groups cannot change results.
  PerThread col(threads, static_cast<size_t>(kRowsDw) * Kp);
  PerThread dyT(threads, static_cast<size_t>(Cp) * kRowsDw);
  for (int t = 0; t < threads; ++t) std::memset(dyT.get(t), 0, sizeof(float) * Cp * kRowsDw);  // rows Cout..Cp stay zero
  parallel_for(groups, [&](int g, int th) {
    const int b0 = static_cast<int>(static_cast<long>(g) * tasks / groups);
    const int b1 = static_cast<int>(static_cast<long>(g + 1) * tasks / groups);
    float* ag = acc.p + static_cast<size_t>(g) * acc_n;
    float* cb = col.get(th);
    float* a = dyT.get(th);
    for (int t = b0; t < b1; ++t) {
      const int r0 = t * kRowsDw;
      const int rows = std::min(kRowsDw, M - r0);
      for (int r = 0; r < rows; ++r) {
        const int m = r0 + r;
        const int ox = m % p.OW, oy = (m / p.OW) % p.OH, n = m / (p.OW * p.OH);
        float* o = cb + static_cast<size_t>(r) * Kp;
        im2col_row(x, p, n, oy, ox, o);
        for (int k = K; k < Kp; ++k) o[k] = 0.f;
      }
      const float* d = dy + static_cast<size_t>(r0) * p.Cout;
      for (int r = 0; r < rows; ++r)
        for (int c = 0; c < p.Cout; ++c) a[static_cast<size_t>(c) * kRowsDw + r] = d[static_cast<size_t>(r) * p.Cout + c];
      // The group's first block stores (no memset of the accumulator), later ones add.
      gemm_block(a, kRowsDw, p.Cout, rows, cb, K, ag, Kp, t != b0, nullptr, false);
    }
  });
  // dw[k, c] = sum over groups in group order, transposed back to HWIO; parallel over k (disjoint writes).
  const int kb = 64;
  const int ktasks = (K + kb - 1) / kb;
  parallel_for_work(static_cast<long>(groups) * p.Cout * K, ktasks, [&](int t, int) {
    const int k1 = std::min(K, (t + 1) * kb);
    for (int k = t * kb; k < k1; ++k)
      for (int c = 0; c < p.Cout; ++c) {
        const size_t i = static_cast<size_t>(c) * Kp + k;
        float s = acc.p[i];
        for (int g = 1; g < groups; ++g) s += acc.p[static_cast<size_t>(g) * acc_n + i];
        dw[static_cast<size_t>(k) * p.Cout + c] = s;
      }
  });
}

}  // namespace fedsfda
