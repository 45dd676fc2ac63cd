// Element-wise, broadcasting, reduction and data-movement kernels over float32 buffers, split over the pool.
#pragma once
#include <cstddef>

namespace fedsfda {

constexpr int kMaxRank = 8;

void relu(const float* x, float* y, size_t n);
// y = x > 0 ? 1 : (NaN stays NaN) 0 — tfjs Step with alpha 0.
void step(const float* x, float* y, size_t n, float alpha);

// y = e^x (float expf; tfjs Exp).
void exponential(const float* x, float* y, size_t n);
// y = x * x.
void square(const float* x, float* y, size_t n);

// tfjs FusedBatchNorm (Ioffe & Szegedy 2015, Alg. 1, normalise + scale and shift):
// y = (x - mean) * scale / sqrt(var + eps) + offset, each parameter indexed by
// i % its length (length C broadcasts over the channel axis of NHWC, length 1 is a scalar).
void batchnorm(const float* x, float* y, size_t n, const float* mean, size_t n_mean, const float* var, size_t n_var,
               const float* offset, size_t n_offset, const float* scale, size_t n_scale, float eps);

enum class BinaryOp { Add = 0, Sub = 1, Mul = 2, Div = 3, SquaredDiff = 4, Max = 5, Min = 6 };

// out[i] = op(a[ai], b[bi]) for an output of `rank` dims `shape`; a_strides / b_strides are element strides
// per output dim (0 where that operand is broadcast).
void binary(BinaryOp op, const float* a, const float* b, float* out, int rank, const int* shape,
            const long* a_strides, const long* b_strides);

// x viewed as [outer, red, inner]; out[o, i] = sum_r x[o, r, i] * scale.
void reduce_sum(const float* x, float* out, long outer, long red, long inner, float scale);

// Copies the box [begin, begin + size) of x (shape in_shape, row-major) into out (dense, shape size).
void slice(const float* x, float* out, int rank, const int* in_shape, const int* begin, const int* size);

// out = tile(x, reps): out_shape[d] = in_shape[d] * reps[d].
void tile(const float* x, float* out, int rank, const int* in_shape, const int* out_shape);

// Training-mode batch norm over the channel (last) axis of x viewed as [rows, C] (Ioffe & Szegedy 2015,
// Alg. 1 and its backward pass, sec. 3):
// bn_stats: mean[c] and biased variance[c] over rows (double accumulation, two passes).
void bn_stats(const float* x, long rows, long C, float* mean, float* var);
// bn_backward: with xhat = (x - mean) * rstd, rstd = 1/sqrt(var + eps):
//   dbeta = sum dy, dgamma = sum dy * xhat, dx = gamma * rstd * (dy - dbeta/rows - xhat * dgamma/rows).
void bn_backward(const float* dy, const float* x, const float* mean, const float* var, const float* gamma, float eps,
                 long rows, long C, float* dx, float* dgamma, float* dbeta);

// Concatenation building block: copies src viewed as [outer, inner] into out viewed as [outer, out_inner]
// at column offset `offset` (one call per input of a concat).
void place_rows(const float* src, float* out, long outer, long inner, long out_inner, long offset);

}  // namespace fedsfda
