#include "plan.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "direct-conv.h"
#include "plan-ops.h"
#include "thread-pool.h"

namespace fedsfda {
namespace {

constexpr long kSlack = 64;  // floats after the arena: full-vector loads past a row's last channel
constexpr int kMaxChannels = 1024;

float* alloc_floats(long n) {
  const size_t bytes = (static_cast<size_t>(n) * sizeof(float) + 63) / 64 * 64;
  auto* p = static_cast<float*>(std::aligned_alloc(64, bytes == 0 ? 64 : bytes));
  if (p) std::memset(p, 0, bytes == 0 ? 64 : bytes);
  return p;
}

bool view_ok(const View& v, long arena, const char* what, int op_index, std::string* err) {
  if (v.N == 0) return true;  // operand unused
  const bool ok = v.off >= 0 && v.N > 0 && v.H > 0 && v.W > 0 && v.C > 0 && v.pad >= 0 && v.pad <= 1 && v.c0 >= 0 &&
                  v.c0 + v.C <= v.cs && v.C <= kMaxChannels && v.off + v.extent() <= arena;
  if (!ok) *err = "op " + std::to_string(op_index) + ": " + what + " view is outside the arena or malformed";
  return ok;
}

bool param_ok(int32_t off, long n, long size, const char* what, int op_index, std::string* err) {
  if (off < 0 || off + n > size) {
    *err = "op " + std::to_string(op_index) + ": parameter " + what + " is outside the parameter buffer";
    return false;
  }
  return true;
}

// CPU time of the whole process (all pool threads): the work an op did, whatever the machine's load.
double process_cpu_ms() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

}  // namespace

bool Workspace::ensure(long arena_floats, long scratch_floats) {
  if (arena_floats > arena_n) {
    std::free(arena);
    arena = alloc_floats(arena_floats + kSlack);
    arena_n = arena ? arena_floats : 0;
  }
  if (scratch_floats > scratch_n) {
    std::free(scratch);
    scratch = alloc_floats(scratch_floats + kSlack);
    scratch_n = scratch ? scratch_floats : 0;
  }
  return arena != nullptr && scratch != nullptr;
}

Workspace::~Workspace() {
  std::free(arena);
  std::free(scratch);
}

Workspace& thread_workspace() {
  thread_local Workspace ws;
  return ws;
}

bool Program::init(Net* net, std::vector<Op> ops, long arena_floats, std::string* err) {
  net_ = net;
  ops_ = std::move(ops);
  const long P = static_cast<long>(net->params.size());
  long packed = 0, dw = 0, partial = 0;
  for (size_t i = 0; i < ops_.size(); ++i) {
    Op& op = ops_[i];
    const int ix = static_cast<int>(i);
    for (const View* v : {&op.a, &op.b, &op.c, &op.d})
      if (!view_ok(*v, arena_floats, "operand", ix, err)) return false;
    if (op.cin > kMaxChannels || op.cout > kMaxChannels || op.cin < 0 || op.cout < 0) {
      *err = "op " + std::to_string(ix) + ": compiled plans support at most 1024 channels per layer";
      return false;
    }
    const long taps = static_cast<long>(op.k) * op.k;
    switch (op.code) {
      case OpCode::Conv:
      case OpCode::ConvBwdInput:
      case OpCode::ConvBwdFilter:
        if (op.k != 1 && op.k != 3) { *err = "op " + std::to_string(ix) + ": conv size must be 1 or 3"; return false; }
        if (!param_ok(op.w, taps * op.cin * op.cout, P, "w", ix, err)) return false;
        break;
      case OpCode::ConvT:
      case OpCode::ConvTBwd:
        if (!param_ok(op.w, 4L * op.cin * op.cout, P, "w", ix, err) || !param_ok(op.bias, op.cout, P, "bias", ix, err)) return false;
        break;
      case OpCode::BnRelu:
      case OpCode::BnReluBwd:
        if (!param_ok(op.gamma, op.cout, P, "gamma", ix, err) || !param_ok(op.beta, op.cout, P, "beta", ix, err)) return false;
        if ((op.flags & kRunningStats) && (!param_ok(op.rmean, op.cout, P, "running mean", ix, err) || !param_ok(op.rvar, op.cout, P, "running var", ix, err)))
          return false;
        if (!(op.flags & kRunningStats) && (op.stats < 0 || op.stats + 2L * op.cout > arena_floats)) {
          *err = "op " + std::to_string(ix) + ": batch statistics outside the arena";
          return false;
        }
        break;
      case OpCode::Loss:
        if (op.k < 2 || op.k > 256) { *err = "op " + std::to_string(ix) + ": loss needs 2..256 classes"; return false; }
        if (op.extra >= 0 && op.extra + static_cast<long>(op.a.N) * op.a.H * op.a.W * op.k > arena_floats) {
          *err = "op " + std::to_string(ix) + ": loss gradient outside the arena";
          return false;
        }
        break;
      case OpCode::Input:
      case OpCode::MaxPool:
      case OpCode::MaxPoolBwd:
      case OpCode::Upsample:
      case OpCode::UpsampleBwd:
        break;
      default:
        *err = "op " + std::to_string(ix) + ": unknown op code " + std::to_string(static_cast<int>(op.code));
        return false;
    }
    if (op.code == OpCode::Conv && op.mode == static_cast<int32_t>(ConvMode::RawStats) && (op.stats < 0 || op.stats + 2L * op.cout > arena_floats)) {
      *err = "op " + std::to_string(ix) + ": batch statistics outside the arena";
      return false;
    }
    if (op.code == OpCode::Conv && op.mode == static_cast<int32_t>(ConvMode::BnReluRunning) &&
        (!param_ok(op.gamma, op.cout, P, "gamma", ix, err) || !param_ok(op.beta, op.cout, P, "beta", ix, err) ||
         !param_ok(op.rmean, op.cout, P, "running mean", ix, err) || !param_ok(op.rvar, op.cout, P, "running var", ix, err)))
      return false;
    if ((op.code == OpCode::Conv || op.code == OpCode::ConvBwdFilter) && op.bias >= 0 && !param_ok(op.bias, op.cout, P, "bias", ix, err))
      return false;
    if (op.code == OpCode::Conv && op.a.pad < op.k / 2) { *err = "op " + std::to_string(ix) + ": conv input needs padding k/2"; return false; }
    op.packed = packed;
    packed += (op_packed_floats(op) + 15) / 16 * 16;
    dw = std::max(dw, op_dw_scratch_floats(op));
    partial = std::max(partial, op_partial_doubles(op));
  }
  arena_n_ = arena_floats;
  dw_off_ = packed;
  dpart_off_ = (packed + dw + 15) / 16 * 16;
  scratch_n_ = dpart_off_ + 2 * partial;  // partial sums are doubles: two floats each
  if (!thread_workspace().ensure(arena_n_, scratch_n_)) {
    *err = "out of memory allocating the plan's arena (" + std::to_string(arena_floats) + " floats)";
    return false;
  }
  return true;
}

bool Program::run(RunCtx& ctx) {
  Workspace& ws = thread_workspace();
  if (!ws.ensure(arena_n_, scratch_n_)) return false;
  ctx.loss = std::nan("");
  op_ms_.resize(2 * ops_.size());
  auto t0 = std::chrono::steady_clock::now();
  double c0 = process_cpu_ms();
  for (size_t i = 0; i < ops_.size(); ++i) {
    exec(ops_[i], ctx, ws.arena, ws.scratch);
    const auto t1 = std::chrono::steady_clock::now();
    const double c1 = process_cpu_ms();
    op_ms_[2 * i] = std::chrono::duration<double, std::milli>(t1 - t0).count();
    op_ms_[2 * i + 1] = c1 - c0;
    t0 = t1;
    c0 = c1;
  }
  return true;
}

void Program::exec(const Op& op, RunCtx& ctx, float* arena, float* scratch) {
  Net& net = *net_;
  float* packed = scratch + op.packed;
  float* dws = scratch + dw_off_;
  double* dpart = reinterpret_cast<double*>(scratch + dpart_off_);
  const bool upd = (op.flags & kUpdate) != 0 && ctx.hyper[kOptKind] != 0;
  switch (op.code) {
    case OpCode::Input: op_input(arena, op, ctx); break;
    case OpCode::Conv: op_conv(arena, net, op, ctx, packed, dpart); break;
    case OpCode::BnRelu: op_bn_relu(arena, net, op, ctx); break;
    case OpCode::MaxPool: op_maxpool(arena, op); break;
    case OpCode::Upsample: op_upsample(arena, op); break;
    case OpCode::ConvT: op_convt(arena, net, op, packed); break;
    case OpCode::Loss: op_loss(arena, op, ctx, dpart); break;
    case OpCode::ConvBwdInput: op_conv_bwd_input(arena, net, op, packed); break;
    case OpCode::ConvBwdFilter:
      op_conv_bwd_filter(arena, net, op, dws, dpart);
      if (upd) {
        update(op.w, static_cast<long>(op.k) * op.k * op.cin * op.cout, ctx);
        if (op.bias >= 0) update(op.bias, op.cout, ctx);
      }
      break;
    case OpCode::BnReluBwd:
      op_bn_relu_bwd(arena, net, op, ctx, dpart);
      if (upd && (op.flags & kGradParams)) {
        update(op.gamma, op.cout, ctx);
        update(op.beta, op.cout, ctx);
      }
      break;
    case OpCode::MaxPoolBwd: op_maxpool_bwd(arena, op); break;
    case OpCode::UpsampleBwd: op_upsample_bwd(arena, op); break;
    case OpCode::ConvTBwd:
      op_convt_bwd(arena, net, op, packed, dws, dpart);
      if (upd && (op.flags & kGradParams)) {
        update(op.w, 4L * op.cin * op.cout, ctx);
        update(op.bias, op.cout, ctx);
      }
      break;
  }
}

// The optimizer on params[off, off + n) from grads, fused into the op that wrote the last gradient of those
// parameters (their filter gradient is final there and no later op reads the old values).
// g = grad + weightDecay * w + mu * (w - anchor);
// sgd: w -= lr g; momentum (tf.train.momentum): a = momentum a + g, w -= lr a;
// adam (Kingma & Ba, ICLR 2015, Alg. 1; tf.train.adam): m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,
//   w -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
void Program::update(long off, long n, const RunCtx& ctx) {
  Net& net = *net_;
  const int kind = static_cast<int>(ctx.hyper[kOptKind]);
  const float lr = static_cast<float>(ctx.hyper[kLr]);
  const float wd = static_cast<float>(ctx.hyper[kWeightDecay]);
  const float mu = static_cast<float>(ctx.hyper[kProxMu]);
  const float mom = static_cast<float>(ctx.hyper[kMomentum]);
  const float b1 = static_cast<float>(ctx.hyper[kBeta1]), b2 = static_cast<float>(ctx.hyper[kBeta2]);
  const float eps = static_cast<float>(ctx.hyper[kAdamEps]);
  const double t = ctx.hyper[kStep];
  const float c1 = static_cast<float>(1.0 - std::pow(static_cast<double>(b1), t));
  const float c2 = static_cast<float>(1.0 - std::pow(static_cast<double>(b2), t));
  float* w = net.params.data() + off;
  const float* g = net.grads.data() + off;
  float* m = net.m.empty() ? nullptr : net.m.data() + off;
  float* v = net.v.empty() ? nullptr : net.v.data() + off;
  const float* a = net.anchor.empty() ? nullptr : net.anchor.data() + off;
  const int chunk = 4096;
  plan_parallel(n * 8, static_cast<int>((n + chunk - 1) / chunk), [&](int task, int) {
    const long i1 = std::min(n, static_cast<long>(task + 1) * chunk);
    for (long i = static_cast<long>(task) * chunk; i < i1; ++i) {
      float gi = g[i];
      if (wd != 0.f) gi += wd * w[i];
      if (mu != 0.f && a) gi += mu * (w[i] - a[i]);
      switch (kind) {
        case 1: w[i] -= lr * gi; break;
        case 2: m[i] = mom * m[i] + gi; w[i] -= lr * m[i]; break;
        case 3:
          m[i] = b1 * m[i] + (1 - b1) * gi;
          v[i] = b2 * v[i] + (1 - b2) * gi * gi;
          w[i] -= lr * (m[i] / c1) / (std::sqrt(v[i] / c2) + eps);
          break;
        default: break;
      }
    }
  });
}

}  // namespace fedsfda
