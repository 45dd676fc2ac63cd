// Register-blocked single-precision GEMM micro-kernels (GCC vector extensions; with -march=native they
// become AVX-512 or AVX2+FMA instructions). All matrices are row-major.
#pragma once
#include <cstddef>
#include <cstdint>

namespace fedsfda {

constexpr int kNR = 16;  // floats per column vector of the packed B panel
#if defined(__AVX512F__)
constexpr int kMR = 8;   // rows per micro-tile: 8 x 2 zmm accumulators of 32 registers
#else
constexpr int kMR = 3;   // AVX2: a 16-float vector is two ymm registers, so fewer rows fit
#endif

inline int round_up(int v, int m) { return (v + m - 1) / m * m; }

// Aligned scratch buffer owned by the caller's scope.
struct Scratch {
  float* p = nullptr;
  size_t n = 0;
  explicit Scratch(size_t count);
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

// Packs B (K x N, element (k, n) at B[k*rs + n*cs]) into out (K x Npad, Npad = round_up(N, kNR)),
// zero padding the extra columns so micro-kernels never branch on N.
void pack_b(const float* B, int K, int N, std::ptrdiff_t rs, std::ptrdiff_t cs, float* out);

// C[r, n] (= or +=) sum_k A[r*lda + k] * Bp[k*Npad + n] (+ bias[n]) (then max(0, .) when relu),
// for r < rows, n < N. A must be readable for round_up(rows, kMR) rows (callers zero-pad).
void gemm_block(const float* A, int lda, int rows, int K, const float* Bp, int N, float* C, int ldc,
                bool accumulate, const float* bias, bool relu);

// Full GEMM with arbitrary strides for A (M x K) and B (K x N); parallel over row blocks.
// C is dense M x N (ldc = N). Used by BatchMatMul / _FusedMatMul.
void gemm_strided(const float* A, std::ptrdiff_t a_rs, std::ptrdiff_t a_cs, const float* B,
                  std::ptrdiff_t b_rs, std::ptrdiff_t b_cs, float* C, int M, int K, int N,
                  const float* bias, bool relu);

}  // namespace fedsfda
