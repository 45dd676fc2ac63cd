#include "direct-conv.h"

#include <algorithm>
#include <cstring>

#include "thread-pool.h"

namespace fedsfda {
namespace {

template <int L>
struct Vec {
  typedef float type __attribute__((vector_size(L * 4), aligned(4)));
};

#if defined(__AVX512F__)
constexpr int kWideLanes = 16;
constexpr int kAccVectors = 24;  // of 32 vector registers: accumulators; the rest hold filter vectors
#else
constexpr int kWideLanes = 8;
constexpr int kAccVectors = 12;  // of 16
#endif
constexpr int kMaxNV = 4;        // channel vectors per register tile (column chunk)
constexpr int kDwGroupsMax = 16; // fixed partial sums of the filter gradient (shape-derived, never thread-derived)

template <int L, int NV>
constexpr int max_rows() {
  return std::min(16, kAccVectors / NV);
}

// ---- forward: one register tile -------------------------------------------------------------------------

template <int L, int MR, int NV>
inline void fwd_tile(const float* a0, long px, const long* toff, int taps, int cin, const float* wp, int wst, float* tmp) {
  typedef typename Vec<L>::type V;
  V acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j) acc[i][j] = V{};
  for (int t = 0; t < taps; ++t) {
    const float* a = a0 + toff[t];
    const float* b = wp + static_cast<long>(t) * cin * wst;
    for (int ci = 0; ci < cin; ++ci) {
      V bv[NV];
      for (int j = 0; j < NV; ++j) bv[j] = *reinterpret_cast<const V*>(b + static_cast<long>(ci) * wst + j * L);
      for (int i = 0; i < MR; ++i) {
        const float s = a[i * px + ci];
        for (int j = 0; j < NV; ++j) acc[i][j] += s * bv[j];
      }
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j) *reinterpret_cast<V*>(tmp + i * NV * L + j * L) = acc[i][j];
}

struct RowCtx {
  const DirectIn* in;
  const float* wp;
  int wst;
  int OW;
  int cout;
  DirectEpilogue* ep;
};

template <int L, int MR, int NV>
inline void fwd_emit(const RowCtx& c, int task, int n, int y, const float* arow, int x0, int col0) {
  alignas(64) float tmp[MR * NV * L];
  fwd_tile<L, MR, NV>(arow + x0 * c.in->px, c.in->px, c.in->tap_off, c.in->taps, c.in->cin, c.wp + col0, c.wst, tmp);
  c.ep->tile(task, n, y, x0, MR, col0, std::min(NV * L, c.cout - col0), tmp, NV * L);
}

template <int L, int NV>
void fwd_row(const RowCtx& c, int task, int n, int y, const float* arow, int col0) {
  constexpr int MRMAX = max_rows<L, NV>();
  int x = 0;
  for (; x + MRMAX <= c.OW; x += MRMAX) fwd_emit<L, MRMAX, NV>(c, task, n, y, arow, x, col0);
  if constexpr (MRMAX > 8) {
    if (x + 8 <= c.OW) { fwd_emit<L, 8, NV>(c, task, n, y, arow, x, col0); x += 8; }
  }
  if constexpr (MRMAX > 4) {
    if (x + 4 <= c.OW) { fwd_emit<L, 4, NV>(c, task, n, y, arow, x, col0); x += 4; }
  }
  if constexpr (MRMAX > 2) {
    if (x + 2 <= c.OW) { fwd_emit<L, 2, NV>(c, task, n, y, arow, x, col0); x += 2; }
  }
  if (x < c.OW) fwd_emit<L, 1, NV>(c, task, n, y, arow, x, col0);
}

template <int L>
void fwd_rows(const RowCtx& c, const DirectShape& s, int task, int r0, int r1) {
  const int cpad = c.wst;
  for (int r = r0; r < r1; ++r) {
    const int n = r / s.OH, y = r % s.OH;
    const float* arow = c.in->base + n * c.in->img + y * c.in->row;
    for (int col0 = 0; col0 < cpad; col0 += kMaxNV * L) {
      switch (std::min(kMaxNV, (cpad - col0) / L)) {
        case 1: fwd_row<L, 1>(c, task, n, y, arow, col0); break;
        case 2: fwd_row<L, 2>(c, task, n, y, arow, col0); break;
        case 3: fwd_row<L, 3>(c, task, n, y, arow, col0); break;
        default: fwd_row<L, 4>(c, task, n, y, arow, col0); break;
      }
    }
  }
}

// ---- filter gradient: one block of KB input rows x NV channel vectors over a group of pixel rows ----------

struct DwCtx {
  const DirectIn* in;
  const DirectShape* s;
  const float* dy;
  long dimg, drow, dpx;
  int cpad;
};

// acc[k][:] = sum over the group's pixels of in(pixel)[off[k]] * dy(pixel)[col0 : col0 + NV*L].
template <int L, int KB, int NV>
void dw_block(const DwCtx& c, int r0, int r1, const long* off, int col0, float* out, int ld) {
  typedef typename Vec<L>::type V;
  V acc[KB][NV];
  for (int k = 0; k < KB; ++k)
    for (int j = 0; j < NV; ++j) acc[k][j] = V{};
  const DirectIn& in = *c.in;
  const int OW = c.s->OW;
  for (int r = r0; r < r1; ++r) {
    const int n = r / c.s->OH, y = r % c.s->OH;
    const float* arow = in.base + n * in.img + y * in.row;
    const float* drow = c.dy + n * c.dimg + y * c.drow + col0;
    for (int x = 0; x < OW; ++x) {
      const float* a = arow + x * in.px;
      const float* d = drow + x * c.dpx;
      V bv[NV];
      for (int j = 0; j < NV; ++j) bv[j] = *reinterpret_cast<const V*>(d + j * L);
      for (int k = 0; k < KB; ++k) {
        const float s = a[off[k]];
        for (int j = 0; j < NV; ++j) acc[k][j] += s * bv[j];
      }
    }
  }
  for (int k = 0; k < KB; ++k)
    for (int j = 0; j < NV; ++j) *reinterpret_cast<V*>(out + k * ld + j * L) = acc[k][j];
}

// dw_block for a block whose KB input offsets are consecutive (off0 + k: one tap's channels, or adjacent taps
// that sit next to each other in memory): the broadcasts read a[k] at constant displacements instead of going
// through the offset table, one load per FMA instead of two (the filter gradient's inner loop was load-bound).
// Same products, same order per accumulator: bit-identical to dw_block.
template <int L, int KB, int NV>
void dw_block_contig(const DwCtx& c, int r0, int r1, long off0, int col0, float* out, int ld) {
  typedef typename Vec<L>::type V;
  V acc[KB][NV];
  for (int k = 0; k < KB; ++k)
    for (int j = 0; j < NV; ++j) acc[k][j] = V{};
  const DirectIn& in = *c.in;
  const int OW = c.s->OW;
  for (int r = r0; r < r1; ++r) {
    const int n = r / c.s->OH, y = r % c.s->OH;
    const float* arow = in.base + n * in.img + y * in.row + off0;
    const float* drow = c.dy + n * c.dimg + y * c.drow + col0;
    for (int x = 0; x < OW; ++x) {
      const float* a = arow + x * in.px;
      const float* d = drow + x * c.dpx;
      V bv[NV];
      for (int j = 0; j < NV; ++j) bv[j] = *reinterpret_cast<const V*>(d + j * L);
      for (int k = 0; k < KB; ++k) {
        const float s = a[k];
        for (int j = 0; j < NV; ++j) acc[k][j] += s * bv[j];
      }
    }
  }
  for (int k = 0; k < KB; ++k)
    for (int j = 0; j < NV; ++j) *reinterpret_cast<V*>(out + k * ld + j * L) = acc[k][j];
}

template <int L, int KB, int NV>
inline void dw_any(const DwCtx& c, int r0, int r1, const long* off, int col0, float* out, int ld) {
  bool contig = true;
  for (int k = 1; k < KB; ++k) contig = contig && off[k] == off[0] + k;
  if (contig) dw_block_contig<L, KB, NV>(c, r0, r1, off[0], col0, out, ld);
  else dw_block<L, KB, NV>(c, r0, r1, off, col0, out, ld);
}

template <int L, int NV>
void dw_rows(const DwCtx& c, int r0, int r1, const long* off, int nk, int col0, float* out) {
  constexpr int KBMAX = max_rows<L, NV>();
  int k = 0;
  for (; k + KBMAX <= nk; k += KBMAX) dw_any<L, KBMAX, NV>(c, r0, r1, off + k, col0, out + k * c.cpad, c.cpad);
  if constexpr (KBMAX > 8) {
    if (k + 8 <= nk) { dw_any<L, 8, NV>(c, r0, r1, off + k, col0, out + k * c.cpad, c.cpad); k += 8; }
  }
  if constexpr (KBMAX > 4) {
    if (k + 4 <= nk) { dw_any<L, 4, NV>(c, r0, r1, off + k, col0, out + k * c.cpad, c.cpad); k += 4; }
  }
  if constexpr (KBMAX > 2) {
    if (k + 2 <= nk) { dw_block<L, 2, NV>(c, r0, r1, off + k, col0, out + k * c.cpad, c.cpad); k += 2; }
  }
  if (k < nk) dw_block<L, 1, NV>(c, r0, r1, off + k, col0, out + k * c.cpad, c.cpad);
}

// One group's partial [taps*cin][cpad]: rows k = t*cin + ci read in(pixel)[tap_off[t] + ci].
template <int L>
void dw_group(const DwCtx& c, int r0, int r1, float* part) {
  const DirectIn& in = *c.in;
  // Blocks of up to 256 rows k = t*cin + ci (a block may span taps: narrow inputs fill whole register tiles).
  const int K = in.taps * in.cin;
  long offs[256];
  const int span = std::min(K, 256);
  for (int k0 = 0; k0 < K; k0 += span) {
    const int nk = std::min(span, K - k0);
    for (int k = 0; k < nk; ++k) {
      const int t = (k0 + k) / in.cin, ci = (k0 + k) % in.cin;
      offs[k] = in.tap_off[t] + ci;
    }
    for (int col0 = 0; col0 < c.cpad; col0 += kMaxNV * L) {
      float* out = part + static_cast<long>(k0) * c.cpad + col0;
      switch (std::min(kMaxNV, (c.cpad - col0) / L)) {
        case 1: dw_rows<L, 1>(c, r0, r1, offs, nk, col0, out); break;
        case 2: dw_rows<L, 2>(c, r0, r1, offs, nk, col0, out); break;
        case 3: dw_rows<L, 3>(c, r0, r1, offs, nk, col0, out); break;
        default: dw_rows<L, 4>(c, r0, r1, offs, nk, col0, out); break;
      }
    }
  }
}

int dw_groups(const DirectShape& s) { return std::min(s.N * s.OH, kDwGroupsMax); }

}  // namespace

int direct_lanes(int cout) { return cout <= 8 ? 8 : kWideLanes; }
int direct_cpad(int cout) {
  const int l = direct_lanes(cout);
  return (cout + l - 1) / l * l;
}

void direct_pack(const float* w, long ts, long cs, long os, int taps, int cin, int cout, float* out) {
  const int cpad = direct_cpad(cout);
  for (int t = 0; t < taps; ++t)
    for (int ci = 0; ci < cin; ++ci) {
      float* o = out + (static_cast<long>(t) * cin + ci) * cpad;
      const float* src = w + t * ts + ci * cs;
      if (os == 1) std::memcpy(o, src, sizeof(float) * cout);
      else for (int co = 0; co < cout; ++co) o[co] = src[co * os];
      for (int co = cout; co < cpad; ++co) o[co] = 0.f;
    }
}

int direct_tasks(const DirectShape& s) {
  const int rows = s.N * s.OH;
  const int per = std::max(1, 256 / std::max(1, s.OW));  // >= 256 output pixels per task where possible
  return (rows + per - 1) / per;
}

void direct_task_rows(const DirectShape& s, int task, int* r0, int* r1) {
  const int rows = s.N * s.OH;
  const int per = std::max(1, 256 / std::max(1, s.OW));
  *r0 = task * per;
  *r1 = std::min(rows, *r0 + per);
}

void direct_forward(const DirectIn& in, const DirectShape& s, const float* wp, int cout, DirectEpilogue& ep) {
  const int lanes = direct_lanes(cout);
  RowCtx c{&in, wp, direct_cpad(cout), s.OW, cout, &ep};
  parallel_for(direct_tasks(s), [&](int task, int) {
    int r0, r1;
    direct_task_rows(s, task, &r0, &r1);
    if (lanes == 8) fwd_rows<8>(c, s, task, r0, r1);
    else fwd_rows<kWideLanes>(c, s, task, r0, r1);
  });
}

size_t direct_filter_grad_scratch(const DirectShape& s, int taps, int cin, int cout) {
  return static_cast<size_t>(dw_groups(s)) * taps * cin * direct_cpad(cout);
}

void direct_filter_grad(const DirectIn& in, const DirectShape& s, const float* dy, long dimg, long drow, long dpx, int cout,
                        float* out, float* scratch) {
  const int lanes = direct_lanes(cout);
  const int cpad = direct_cpad(cout);
  const int rows = s.N * s.OH;
  const int G = dw_groups(s);
  const long part_n = static_cast<long>(in.taps) * in.cin * cpad;
  DwCtx c{&in, &s, dy, dimg, drow, dpx, cpad};
  parallel_for(G, [&](int g, int) {
    const int r0 = static_cast<int>(static_cast<long>(g) * rows / G);
    const int r1 = static_cast<int>(static_cast<long>(g + 1) * rows / G);
    float* part = scratch + g * part_n;
    if (lanes == 8) dw_group<8>(c, r0, r1, part);
    else dw_group<kWideLanes>(c, r0, r1, part);
  });
  // out[k][co] = sum over groups in group order (fixed): bit-identical for any thread count.
  const int K = in.taps * in.cin;
  const int kb = 32;
  parallel_for_work(static_cast<long>(G) * K * cpad, (K + kb - 1) / kb, [&](int t, int) {
    const int k1 = std::min(K, (t + 1) * kb);
    for (int k = t * kb; k < k1; ++k)
      for (int co = 0; co < cout; ++co) {
        const long i = static_cast<long>(k) * cpad + co;
        float v = scratch[i];
        for (int g = 1; g < G; ++g) v += scratch[g * part_n + i];
        out[static_cast<long>(k) * cout + co] = v;
      }
  });
}

}  // namespace fedsfda
