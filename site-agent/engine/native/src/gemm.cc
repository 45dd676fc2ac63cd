#include "gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "thread-pool.h"

namespace fedsfda {

typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));

Scratch::Scratch(size_t count) : n(count) {
  size_t bytes = (count * sizeof(float) + 63) / 64 * 64;
  if (bytes == 0) bytes = 64;
  p = static_cast<float*>(std::aligned_alloc(64, bytes));
}
Scratch::~Scratch() { std::free(p); }

void pack_b(const float* B, int K, int N, std::ptrdiff_t rs, std::ptrdiff_t cs, float* out) {
  const int Np = round_up(N, kNR);
  for (int k = 0; k < K; ++k) {
    float* o = out + static_cast<size_t>(k) * Np;
    const float* b = B + k * rs;
    if (cs == 1) {
      std::memcpy(o, b, sizeof(float) * N);
    } else {
      for (int n = 0; n < N; ++n) o[n] = b[n * cs];
    }
    for (int n = N; n < Np; ++n) o[n] = 0.f;
  }
}

namespace {

// One MR x (NV*16) tile: accumulators stay in registers for the whole K loop.
template <int MR, int NV>
inline void micro(const float* A, int lda, const float* B, int ldb, int K, v16 (&acc)[MR][NV]) {
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j) acc[i][j] = v16{};
  for (int k = 0; k < K; ++k) {
    v16 b[NV];
    for (int j = 0; j < NV; ++j) b[j] = *reinterpret_cast<const v16*>(B + static_cast<size_t>(k) * ldb + j * kNR);
    for (int i = 0; i < MR; ++i) {
      const float a = A[static_cast<size_t>(i) * lda + k];
      for (int j = 0; j < NV; ++j) acc[i][j] += b[j] * a;
    }
  }
}

template <int MR, int NV>
inline void tile(const float* A, int lda, int rows_valid, int K, const float* B, int ldb, int col0, int N,
                 float* C, int ldc, bool accumulate, const float* bias, bool relu) {
  v16 acc[MR][NV];
  micro<MR, NV>(A, lda, B + col0, ldb, K, acc);
  const int cols_valid = std::min(NV * kNR, N - col0);
  if (bias != nullptr || relu) {
    v16 bv[NV];
    for (int j = 0; j < NV; ++j) bv[j] = v16{};
    if (bias != nullptr) {
      float tmp[NV * kNR] = {};
      std::memcpy(tmp, bias + col0, sizeof(float) * cols_valid);
      for (int j = 0; j < NV; ++j) std::memcpy(&bv[j], tmp + j * kNR, sizeof(v16));
    }
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NV; ++j) {
        v16 v = acc[i][j] + bv[j];
        if (relu) v = v > 0 ? v : v16{};
        acc[i][j] = v;
      }
  }
  const int rv = std::min(MR, rows_valid);
  if (cols_valid == NV * kNR) {
    for (int i = 0; i < rv; ++i) {
      float* c = C + static_cast<size_t>(i) * ldc + col0;
      for (int j = 0; j < NV; ++j) {
        v16u* cp = reinterpret_cast<v16u*>(c + j * kNR);
        if (accumulate) *cp = *cp + acc[i][j];
        else *cp = acc[i][j];
      }
    }
  } else {
    for (int i = 0; i < rv; ++i) {
      float tmp[NV * kNR];
      std::memcpy(tmp, &acc[i][0], sizeof(tmp));
      float* c = C + static_cast<size_t>(i) * ldc + col0;
      if (accumulate) {
        for (int n = 0; n < cols_valid; ++n) c[n] += tmp[n];
      } else {
        std::memcpy(c, tmp, sizeof(float) * cols_valid);
      }
    }
  }
}

}  // namespace

void gemm_block(const float* A, int lda, int rows, int K, const float* Bp, int N, float* C, int ldc,
                bool accumulate, const float* bias, bool relu) {
  const int Np = round_up(N, kNR);
  // Column panels of 32 first (two vectors), a last single-vector panel if N % 32 in (0, 16].
  for (int col0 = 0; col0 < N; col0 += 2 * kNR) {
    const bool two = col0 + kNR < N;
    for (int r = 0; r < rows; r += kMR) {
      const float* a = A + static_cast<size_t>(r) * lda;
      float* c = C + static_cast<size_t>(r) * ldc;
      if (two) tile<kMR, 2>(a, lda, rows - r, K, Bp, Np, col0, N, c, ldc, accumulate, bias, relu);
      else tile<kMR, 1>(a, lda, rows - r, K, Bp, Np, col0, N, c, ldc, accumulate, bias, relu);
    }
  }
}

void gemm_strided(const float* A, std::ptrdiff_t a_rs, std::ptrdiff_t a_cs, const float* B,
                  std::ptrdiff_t b_rs, std::ptrdiff_t b_cs, float* C, int M, int K, int N,
                  const float* bias, bool relu) {
  const int Np = round_up(N, kNR);
  Scratch bp(static_cast<size_t>(K) * Np);
  pack_b(B, K, N, b_rs, b_cs, bp.p);
  const int block = std::max(kMR, round_up(std::min(M, 96), kMR));
  const int tasks = (M + block - 1) / block;
  parallel_for(tasks, [&](int t, int) {
    const int r0 = t * block;
    const int rows = std::min(block, M - r0);
    Scratch ap(static_cast<size_t>(round_up(rows, kMR)) * K);
    for (int r = 0; r < round_up(rows, kMR); ++r) {
      float* o = ap.p + static_cast<size_t>(r) * K;
      if (r >= rows) {
        std::memset(o, 0, sizeof(float) * K);
        continue;
      }
      const float* a = A + (r0 + r) * a_rs;
      if (a_cs == 1) std::memcpy(o, a, sizeof(float) * K);
      else for (int k = 0; k < K; ++k) o[k] = a[k * a_cs];
    }
    gemm_block(ap.p, K, rows, K, bp.p, N, C + static_cast<size_t>(r0) * N, N, false, bias, relu);
  });
}

}  // namespace fedsfda
