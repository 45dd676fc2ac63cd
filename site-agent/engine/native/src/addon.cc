// N-API surface of the fedsfda native kernels. Every function writes into caller-allocated Float32Arrays
// (the tfjs backend's own buffers), so no tensor data is copied across the JS/C++ boundary.
// Argument validation is strict: a wrong length or type throws a JS TypeError/RangeError, never UB.
#include <napi.h>

#include <cstdint>
#include <string>

#include "conv.h"
#include "elementwise.h"
#include "gemm.h"
#include "plan-binding.h"
#include "pool.h"
#include "thread-pool.h"

using namespace fedsfda;

namespace {

bool fail(const Napi::Env& env, const std::string& msg) {
  Napi::RangeError::New(env, "fedsfda_native: " + msg).ThrowAsJavaScriptException();
  return false;
}

bool f32(const Napi::CallbackInfo& info, size_t i, const char* name, size_t need, float** out, bool optional = false) {
  Napi::Env env = info.Env();
  if (optional && (info.Length() <= i || info[i].IsNull() || info[i].IsUndefined())) { *out = nullptr; return true; }
  if (info.Length() <= i || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    return fail(env, std::string(name) + " must be a Float32Array");
  auto a = info[i].As<Napi::Float32Array>();
  if (a.ElementLength() < need)
    return fail(env, std::string(name) + " has " + std::to_string(a.ElementLength()) + " elements, needs " + std::to_string(need));
  *out = a.Data();
  return true;
}

bool ints(const Napi::CallbackInfo& info, size_t i, size_t count, int* out) {
  Napi::Env env = info.Env();
  if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    return fail(env, "params must be an Int32Array");
  auto a = info[i].As<Napi::Int32Array>();
  if (a.ElementLength() != count) return fail(env, "params must have " + std::to_string(count) + " entries");
  for (size_t k = 0; k < count; ++k) out[k] = a[k];
  return true;
}

bool conv_params(const Napi::CallbackInfo& info, size_t i, ConvParams* p) {
  int v[15];
  if (!ints(info, i, 15, v)) return false;
  *p = ConvParams{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14]};
  for (int k = 0; k < 15; ++k)
    if (v[k] < 0 || (k < 13 && k != 0 && v[k] == 0)) return fail(info.Env(), "conv params must be positive");
  return true;
}

size_t in_size(const ConvParams& p) { return static_cast<size_t>(p.N) * p.H * p.W * p.Cin; }
size_t out_size(const ConvParams& p) { return static_cast<size_t>(p.N) * p.OH * p.OW * p.Cout; }
size_t w_size(const ConvParams& p) { return static_cast<size_t>(p.FH) * p.FW * p.Cin * p.Cout; }

Napi::Value Conv2D(const Napi::CallbackInfo& info) {
  ConvParams p;
  float *x, *w, *y, *bias;
  if (!conv_params(info, 3, &p) || !f32(info, 0, "x", in_size(p), &x) || !f32(info, 1, "filter", w_size(p), &w) ||
      !f32(info, 2, "y", out_size(p), &y) || !f32(info, 4, "bias", p.Cout, &bias, true))
    return info.Env().Undefined();
  const bool relu = info.Length() > 5 && info[5].ToBoolean().Value();
  conv2d_forward(x, w, y, p, bias, relu);
  return info.Env().Undefined();
}

Napi::Value Conv2DBackpropInput(const Napi::CallbackInfo& info) {
  ConvParams p;
  float *dy, *w, *dx;
  if (!conv_params(info, 3, &p) || !f32(info, 0, "dy", out_size(p), &dy) || !f32(info, 1, "filter", w_size(p), &w) ||
      !f32(info, 2, "dx", in_size(p), &dx))
    return info.Env().Undefined();
  conv2d_backprop_input(dy, w, dx, p);
  return info.Env().Undefined();
}

Napi::Value Conv2DBackpropFilter(const Napi::CallbackInfo& info) {
  ConvParams p;
  float *x, *dy, *dw;
  if (!conv_params(info, 3, &p) || !f32(info, 0, "x", in_size(p), &x) || !f32(info, 1, "dy", out_size(p), &dy) ||
      !f32(info, 2, "dw", w_size(p), &dw))
    return info.Env().Undefined();
  conv2d_backprop_filter(x, dy, dw, p);
  return info.Env().Undefined();
}

// matMul(a, b, c, params Int32Array[batch, M, K, N, transA, transB, aBatch, bBatch], bias|null, relu)
// a is [aBatch, M, K] (or [aBatch, K, M] when transA); aBatch is 1 (broadcast) or batch. Same for b.
Napi::Value MatMul(const Napi::CallbackInfo& info) {
  int v[8];
  if (!ints(info, 3, 8, v)) return info.Env().Undefined();
  const int batch = v[0], M = v[1], K = v[2], N = v[3], ta = v[4], tb = v[5], ab = v[6], bb = v[7];
  if (batch <= 0 || M < 0 || K < 0 || N < 0 || (ab != 1 && ab != batch) || (bb != 1 && bb != batch)) {
    fail(info.Env(), "bad matMul params");
    return info.Env().Undefined();
  }
  float *a, *b, *c, *bias;
  if (!f32(info, 0, "a", static_cast<size_t>(ab) * M * K, &a) || !f32(info, 1, "b", static_cast<size_t>(bb) * K * N, &b) ||
      !f32(info, 2, "c", static_cast<size_t>(batch) * M * N, &c) || !f32(info, 4, "bias", N, &bias, true))
    return info.Env().Undefined();
  const bool relu = info.Length() > 5 && info[5].ToBoolean().Value();
  for (int i = 0; i < batch; ++i) {
    const float* ai = a + (ab == 1 ? 0 : static_cast<size_t>(i) * M * K);
    const float* bi = b + (bb == 1 ? 0 : static_cast<size_t>(i) * K * N);
    float* ci = c + static_cast<size_t>(i) * M * N;
    if (M == 0 || N == 0) continue;
    gemm_strided(ai, ta ? 1 : K, ta ? M : 1, bi, tb ? 1 : N, tb ? K : 1, ci, M, K, N, bias, relu);
  }
  return info.Env().Undefined();
}

bool pool_params(const Napi::CallbackInfo& info, size_t i, PoolParams* p) {
  int v[14];
  if (!ints(info, i, 14, v)) return false;
  *p = PoolParams{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13]};
  for (int k = 0; k < 12; ++k)
    if (v[k] <= 0 && k != 0) return fail(info.Env(), "pool params must be positive");
  return true;
}

Napi::Value MaxPool(const Napi::CallbackInfo& info) {
  PoolParams p;
  float *x, *y;
  if (!pool_params(info, 2, &p) || !f32(info, 0, "x", static_cast<size_t>(p.N) * p.H * p.W * p.C, &x) ||
      !f32(info, 1, "y", static_cast<size_t>(p.N) * p.OH * p.OW * p.C, &y))
    return info.Env().Undefined();
  maxpool_forward(x, y, p);
  return info.Env().Undefined();
}

Napi::Value MaxPoolGrad(const Napi::CallbackInfo& info) {
  PoolParams p;
  float *dy, *x, *dx;
  if (!pool_params(info, 3, &p) || !f32(info, 0, "dy", static_cast<size_t>(p.N) * p.OH * p.OW * p.C, &dy) ||
      !f32(info, 1, "x", static_cast<size_t>(p.N) * p.H * p.W * p.C, &x) ||
      !f32(info, 2, "dx", static_cast<size_t>(p.N) * p.H * p.W * p.C, &dx))
    return info.Env().Undefined();
  maxpool_backward(dy, x, dx, p);
  return info.Env().Undefined();
}

size_t length_of(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() > i && info[i].IsTypedArray()) return info[i].As<Napi::TypedArray>().ElementLength();
  return 0;
}

Napi::Value Relu(const Napi::CallbackInfo& info) {
  const size_t n = length_of(info, 0);
  float *x, *y;
  if (!f32(info, 0, "x", n, &x) || !f32(info, 1, "y", n, &y)) return info.Env().Undefined();
  relu(x, y, n);
  return info.Env().Undefined();
}

Napi::Value Step(const Napi::CallbackInfo& info) {
  const size_t n = length_of(info, 0);
  float *x, *y;
  if (!f32(info, 0, "x", n, &x) || !f32(info, 1, "y", n, &y)) return info.Env().Undefined();
  const float alpha = info.Length() > 2 && info[2].IsNumber() ? info[2].As<Napi::Number>().FloatValue() : 0.f;
  step(x, y, n, alpha);
  return info.Env().Undefined();
}

Napi::Value Exp(const Napi::CallbackInfo& info) {
  const size_t n = length_of(info, 0);
  float *x, *y;
  if (!f32(info, 0, "x", n, &x) || !f32(info, 1, "y", n, &y)) return info.Env().Undefined();
  exponential(x, y, n);
  return info.Env().Undefined();
}

Napi::Value Square(const Napi::CallbackInfo& info) {
  const size_t n = length_of(info, 0);
  float *x, *y;
  if (!f32(info, 0, "x", n, &x) || !f32(info, 1, "y", n, &y)) return info.Env().Undefined();
  square(x, y, n);
  return info.Env().Undefined();
}

// batchNorm(x, y, mean, variance, offset|null, scale|null, eps)
Napi::Value BatchNorm(const Napi::CallbackInfo& info) {
  const size_t n = length_of(info, 0);
  float *x, *y, *mean, *var, *offset, *scale;
  if (!f32(info, 0, "x", n, &x) || !f32(info, 1, "y", n, &y) || !f32(info, 2, "mean", 1, &mean) ||
      !f32(info, 3, "variance", 1, &var) || !f32(info, 4, "offset", 1, &offset, true) || !f32(info, 5, "scale", 1, &scale, true))
    return info.Env().Undefined();
  if (info.Length() < 7 || !info[6].IsNumber()) { fail(info.Env(), "batchNorm: eps must be a number"); return info.Env().Undefined(); }
  batchnorm(x, y, n, mean, length_of(info, 2), var, length_of(info, 3), offset, offset ? length_of(info, 4) : 0, scale,
            scale ? length_of(info, 5) : 0, info[6].As<Napi::Number>().FloatValue());
  return info.Env().Undefined();
}

// placeRows(src, out, outer, inner, outInner, offset)
Napi::Value PlaceRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 6) { fail(env, "placeRows(src, out, outer, inner, outInner, offset)"); return env.Undefined(); }
  const long outer = info[2].As<Napi::Number>().Int64Value(), inner = info[3].As<Napi::Number>().Int64Value(),
             out_inner = info[4].As<Napi::Number>().Int64Value(), offset = info[5].As<Napi::Number>().Int64Value();
  if (outer < 0 || inner < 0 || offset < 0 || offset + inner > out_inner) { fail(env, "placeRows: bad sizes"); return env.Undefined(); }
  float *src, *out;
  if (!f32(info, 0, "src", static_cast<size_t>(outer * inner), &src) || !f32(info, 1, "out", static_cast<size_t>(outer * out_inner), &out))
    return env.Undefined();
  if (outer > 0 && inner > 0) place_rows(src, out, outer, inner, out_inner, offset);
  return env.Undefined();
}

// bnStats(x, C, mean, variance)
Napi::Value BnStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const size_t n = length_of(info, 0);
  if (info.Length() < 4 || !info[1].IsNumber()) { fail(env, "bnStats(x, C, mean, variance)"); return env.Undefined(); }
  const long C = info[1].As<Napi::Number>().Int64Value();
  if (C <= 0 || n % static_cast<size_t>(C) != 0 || n == 0) { fail(env, "bnStats: x length must be a positive multiple of C"); return env.Undefined(); }
  float *x, *mean, *var;
  if (!f32(info, 0, "x", n, &x) || !f32(info, 2, "mean", C, &mean) || !f32(info, 3, "variance", C, &var)) return env.Undefined();
  bn_stats(x, static_cast<long>(n) / C, C, mean, var);
  return env.Undefined();
}

// bnBackward(dy, x, mean, variance, gamma|null, eps, dx, dgamma, dbeta)
Napi::Value BnBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const size_t n = length_of(info, 0);
  const size_t C = length_of(info, 2);
  if (info.Length() < 9 || !info[5].IsNumber() || C == 0 || n == 0 || n % C != 0) {
    fail(env, "bnBackward(dy, x, mean, variance, gamma|null, eps, dx, dgamma, dbeta) with length(dy) a positive multiple of length(mean)");
    return env.Undefined();
  }
  float *dy, *x, *mean, *var, *gamma, *dx, *dg, *db;
  if (!f32(info, 0, "dy", n, &dy) || !f32(info, 1, "x", n, &x) || !f32(info, 2, "mean", C, &mean) ||
      !f32(info, 3, "variance", C, &var) || !f32(info, 4, "gamma", C, &gamma, true) || !f32(info, 6, "dx", n, &dx) ||
      !f32(info, 7, "dgamma", C, &dg) || !f32(info, 8, "dbeta", C, &db))
    return env.Undefined();
  bn_backward(dy, x, mean, var, gamma, info[5].As<Napi::Number>().FloatValue(), static_cast<long>(n / C), static_cast<long>(C), dx, dg, db);
  return env.Undefined();
}

// Reads an Int32Array of dims (rank 1..kMaxRank).
bool dims(const Napi::CallbackInfo& info, size_t i, const char* name, int* out, int* rank) {
  if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    return fail(info.Env(), std::string(name) + " must be an Int32Array");
  auto a = info[i].As<Napi::Int32Array>();
  if (a.ElementLength() < 1 || a.ElementLength() > static_cast<size_t>(kMaxRank))
    return fail(info.Env(), std::string(name) + " must have 1.." + std::to_string(kMaxRank) + " entries");
  for (size_t k = 0; k < a.ElementLength(); ++k) {
    out[k] = a[k];
    if (out[k] < 0) return fail(info.Env(), std::string(name) + " entries must be >= 0");
  }
  *rank = static_cast<int>(a.ElementLength());
  return true;
}

// binary(op, a, b, out, shape, aStrides, bStrides)
Napi::Value Binary(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 7 || !info[0].IsNumber()) { fail(env, "binary(op, a, b, out, shape, aStrides, bStrides)"); return env.Undefined(); }
  const int op = info[0].As<Napi::Number>().Int32Value();
  if (op < 0 || op > 6) { fail(env, "unknown binary op"); return env.Undefined(); }
  int shape[kMaxRank], as_i[kMaxRank], bs_i[kMaxRank], rank, ra, rb;
  if (!dims(info, 4, "shape", shape, &rank) || !dims(info, 5, "aStrides", as_i, &ra) || !dims(info, 6, "bStrides", bs_i, &rb))
    return env.Undefined();
  if (ra != rank || rb != rank) { fail(env, "strides must have the rank of shape"); return env.Undefined(); }
  size_t n = 1, na = 1, nb = 1;
  long as[kMaxRank], bs[kMaxRank];
  for (int d = 0; d < rank; ++d) {
    n *= shape[d];
    as[d] = as_i[d];
    bs[d] = bs_i[d];
    if (shape[d] > 0) { na += static_cast<size_t>(as[d]) * (shape[d] - 1); nb += static_cast<size_t>(bs[d]) * (shape[d] - 1); }
  }
  float *a, *b, *out;
  if (!f32(info, 1, "a", n == 0 ? 0 : na, &a) || !f32(info, 2, "b", n == 0 ? 0 : nb, &b) || !f32(info, 3, "out", n, &out))
    return env.Undefined();
  if (n > 0) binary(static_cast<BinaryOp>(op), a, b, out, rank, shape, as, bs);
  return env.Undefined();
}

// reduceSum(x, out, outer, red, inner, scale)
Napi::Value ReduceSum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 6) { fail(env, "reduceSum(x, out, outer, red, inner, scale)"); return env.Undefined(); }
  const long outer = info[2].As<Napi::Number>().Int64Value(), red = info[3].As<Napi::Number>().Int64Value(),
             inner = info[4].As<Napi::Number>().Int64Value();
  const float scale = info[5].As<Napi::Number>().FloatValue();
  if (outer < 0 || red < 0 || inner < 0) { fail(env, "reduceSum sizes must be >= 0"); return env.Undefined(); }
  float *x, *out;
  if (!f32(info, 0, "x", static_cast<size_t>(outer * red * inner), &x) || !f32(info, 1, "out", static_cast<size_t>(outer * inner), &out))
    return env.Undefined();
  reduce_sum(x, out, outer, red, inner, scale);
  return env.Undefined();
}

// slice(x, out, inShape, begin, size)
Napi::Value Slice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int in_shape[kMaxRank], begin[kMaxRank], size[kMaxRank], r1, r2, r3;
  if (!dims(info, 2, "inShape", in_shape, &r1) || !dims(info, 3, "begin", begin, &r2) || !dims(info, 4, "size", size, &r3))
    return env.Undefined();
  if (r1 != r2 || r1 != r3) { fail(env, "slice: inShape, begin and size must have equal rank"); return env.Undefined(); }
  size_t n_in = 1, n_out = 1;
  for (int d = 0; d < r1; ++d) {
    if (begin[d] + size[d] > in_shape[d]) { fail(env, "slice: box exceeds the input"); return env.Undefined(); }
    n_in *= in_shape[d];
    n_out *= size[d];
  }
  float *x, *out;
  if (!f32(info, 0, "x", n_in, &x) || !f32(info, 1, "out", n_out, &out)) return env.Undefined();
  if (n_out > 0) slice(x, out, r1, in_shape, begin, size);
  return env.Undefined();
}

// tile(x, out, inShape, outShape)
Napi::Value Tile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int in_shape[kMaxRank], out_shape[kMaxRank], r1, r2;
  if (!dims(info, 2, "inShape", in_shape, &r1) || !dims(info, 3, "outShape", out_shape, &r2)) return env.Undefined();
  if (r1 != r2) { fail(env, "tile: ranks differ"); return env.Undefined(); }
  size_t n_in = 1, n_out = 1;
  for (int d = 0; d < r1; ++d) {
    if (in_shape[d] == 0 || out_shape[d] % in_shape[d] != 0) { fail(env, "tile: outShape must be a multiple of inShape"); return env.Undefined(); }
    n_in *= in_shape[d];
    n_out *= out_shape[d];
  }
  float *x, *out;
  if (!f32(info, 0, "x", n_in, &x) || !f32(info, 1, "out", n_out, &out)) return env.Undefined();
  if (n_out > 0) tile(x, out, r1, in_shape, out_shape);
  return env.Undefined();
}

Napi::Value Threads(const Napi::CallbackInfo& info) {
  if (info.Length() > 0 && info[0].IsNumber()) {
    const int n = info[0].As<Napi::Number>().Int32Value();
    if (n < 1 || n > 256) {
      fail(info.Env(), "threads must be in [1, 256]");
      return info.Env().Undefined();
    }
    pool_set_threads(n);
  }
  return Napi::Number::New(info.Env(), pool_threads());
}

Napi::Value Simd(const Napi::CallbackInfo& info) {
#if defined(__AVX512F__)
  const char* s = "avx512f+fma";
#elif defined(__AVX2__) && defined(__FMA__)
  const char* s = "avx2+fma";
#elif defined(__AVX__)
  const char* s = "avx";
#elif defined(__SSE2__)
  const char* s = "sse2";
#elif defined(__ARM_NEON)
  const char* s = "neon";
#else
  const char* s = "scalar";
#endif
  return Napi::String::New(info.Env(), s);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("conv2d", Napi::Function::New(env, Conv2D));
  exports.Set("conv2dBackpropInput", Napi::Function::New(env, Conv2DBackpropInput));
  exports.Set("conv2dBackpropFilter", Napi::Function::New(env, Conv2DBackpropFilter));
  exports.Set("matMul", Napi::Function::New(env, MatMul));
  exports.Set("maxPool", Napi::Function::New(env, MaxPool));
  exports.Set("maxPoolGrad", Napi::Function::New(env, MaxPoolGrad));
  exports.Set("relu", Napi::Function::New(env, Relu));
  exports.Set("step", Napi::Function::New(env, Step));
  exports.Set("binary", Napi::Function::New(env, Binary));
  exports.Set("reduceSum", Napi::Function::New(env, ReduceSum));
  exports.Set("slice", Napi::Function::New(env, Slice));
  exports.Set("tile", Napi::Function::New(env, Tile));
  exports.Set("square", Napi::Function::New(env, Square));
  exports.Set("exp", Napi::Function::New(env, Exp));
  exports.Set("batchNorm", Napi::Function::New(env, BatchNorm));
  exports.Set("placeRows", Napi::Function::New(env, PlaceRows));
  exports.Set("bnStats", Napi::Function::New(env, BnStats));
  exports.Set("bnBackward", Napi::Function::New(env, BnBackward));
  exports.Set("threads", Napi::Function::New(env, Threads));
  exports.Set("simd", Napi::Function::New(env, Simd));
  register_plan(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(fedsfda_native, Init)
