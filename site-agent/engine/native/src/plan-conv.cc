// Convolution-family ops of the compiled plans, on the direct kernels (direct-conv.h):
// Conv (k = 1 or 3, stride 1, 'same'), its input and filter gradients, and the 2x2 stride-2 transposed
// convolution with its gradients. Filters keep tfjs's layouts: conv [k][k][cin][cout], transposed conv
// [2][2][cout][cin]; gradients are written in the same layout at the same offset of Net::grads.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "direct-conv.h"
#include "plan-ops.h"

namespace fedsfda {
namespace {

// Taps of a k x k window read from a view's padded buffer, relative to interior pixel (y - k/2, x - k/2).
struct Taps {
  long off[9];
  int n;
  Taps(const View& v, int k) : n(k * k) {
    for (int t = 0; t < n; ++t) off[t] = (t / k) * v.row() + (t % k) * v.cs;
  }
};

// Input map of a stride-1 'same' k x k convolution reading view v.
DirectIn conv_in(const float* arena, const View& v, const Taps& taps, int k) {
  const int r = k / 2;
  return DirectIn{arena + v.at(0, 0, 0) - r * v.row() - r * v.cs, v.img(), v.row(), v.cs, taps.n, taps.off, v.C};
}

// Stores (or adds) tiles into a view; optional per-channel bias; optional per-task moments.
class StoreEpilogue : public DirectEpilogue {
 public:
  StoreEpilogue(float* arena, const View& dst, bool accumulate, const float* bias, double* moments, int channels)
      : arena_(arena), dst_(dst), acc_(accumulate), bias_(bias), mom_(moments), C_(channels) {}
  void tile(int task, int n, int y, int x0, int rows, int col0, int cols, const float* tmp, int ld) override {
    for (int r = 0; r < rows; ++r) {
      float* __restrict o = arena_ + dst_.at(n, y, x0 + r) + col0;
      const float* __restrict t = tmp + r * ld;
      if (bias_) {
        for (int c = 0; c < cols; ++c) o[c] = (acc_ ? o[c] : 0.f) + t[c] + bias_[col0 + c];
      } else if (acc_) {
        for (int c = 0; c < cols; ++c) o[c] += t[c];
      } else {
        for (int c = 0; c < cols; ++c) o[c] = t[c];
      }
    }
    if (!mom_) return;
    // Moments of the stored values (bias included): the tile's rows summed in float (at most 16 pixels, at most
    // 64 channels per tile), added to the task's double sums.
    double* sum = mom_ + static_cast<long>(task) * 2 * C_ + col0;
    double* sq = sum + C_;
    float s[64], q[64];
    for (int c = 0; c < cols; ++c) s[c] = q[c] = 0.f;
    for (int r = 0; r < rows; ++r) {
      const float* t = tmp + r * ld;
      for (int c = 0; c < cols; ++c) {
        const float v = bias_ ? t[c] + bias_[col0 + c] : t[c];
        s[c] += v;
        q[c] += v * v;
      }
    }
    for (int c = 0; c < cols; ++c) {
      sum[c] += s[c];
      sq[c] += q[c];
    }
  }

 private:
  float* arena_;
  View dst_;
  bool acc_;
  const float* bias_;
  double* mom_;
  int C_;
};

// relu(v * scale + shift) per channel (inference: BN with running statistics folded in).
class BnReluEpilogue : public DirectEpilogue {
 public:
  BnReluEpilogue(float* arena, const View& dst, const float* scale, const float* shift)
      : arena_(arena), dst_(dst), scale_(scale), shift_(shift) {}
  void tile(int, int n, int y, int x0, int rows, int col0, int cols, const float* tmp, int ld) override {
    for (int r = 0; r < rows; ++r) {
      float* o = arena_ + dst_.at(n, y, x0 + r) + col0;
      const float* t = tmp + r * ld;
      for (int c = 0; c < cols; ++c) o[c] = std::max(0.f, t[c] * scale_[col0 + c] + shift_[col0 + c]);
    }
  }

 private:
  float* arena_;
  View dst_;
  const float* scale_;
  const float* shift_;
};

// Transposed 2x2 stride-2 conv as a 1x1 conv with 4*cout columns j = t*cout + co, scattered to pixel
// (2y + t/2, 2x + t%2) of the output, plus bias.
class ScatterEpilogue : public DirectEpilogue {
 public:
  ScatterEpilogue(float* arena, const View& dst, const float* bias, int cout) : arena_(arena), dst_(dst), bias_(bias), cout_(cout) {}
  void tile(int, int n, int y, int x0, int rows, int col0, int cols, const float* tmp, int ld) override {
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) {
        const int j = col0 + c, t = j / cout_, co = j % cout_;
        arena_[dst_.at(n, 2 * y + t / 2, 2 * (x0 + r) + t % 2) + co] = tmp[r * ld + c] + bias_[co];
      }
  }

 private:
  float* arena_;
  View dst_;
  const float* bias_;
  int cout_;
};

// Sums of the given view's channels over all pixels, by fixed row tasks (doubles, combined in order).
void channel_sums(const float* arena, const View& v, double* dpart, float* out) {
  int per;
  const int tasks = plan_row_tasks(v.N * v.H, static_cast<long>(v.W) * v.C, &per);
  const int C = v.C;
  plan_parallel(static_cast<long>(v.N) * v.H * v.W * C, tasks, [&](int t, int) {
    double* s = dpart + static_cast<long>(t) * C;
    std::fill(s, s + C, 0.0);
    const int r1 = std::min(v.N * v.H, (t + 1) * per);
    for (int r = t * per; r < r1; ++r)
      for (int x = 0; x < v.W; ++x) {
        const float* p = arena + v.at(r / v.H, r % v.H, x);
        for (int c = 0; c < C; ++c) s[c] += p[c];
      }
  });
  for (int c = 0; c < C; ++c) {
    double s = 0;
    for (int t = 0; t < tasks; ++t) s += dpart[static_cast<long>(t) * C + c];
    out[c] = static_cast<float>(s);
  }
}

}  // namespace

long op_packed_floats(const Op& op) {
  switch (op.code) {
    case OpCode::Conv: return static_cast<long>(op.k) * op.k * op.cin * direct_cpad(op.cout) + 2L * direct_cpad(op.cout);  // + BN scale/shift
    case OpCode::ConvBwdInput: return static_cast<long>(op.k) * op.k * op.cout * direct_cpad(op.cin);
    case OpCode::ConvT: return static_cast<long>(op.cin) * direct_cpad(4 * op.cout);
    case OpCode::ConvTBwd: return 4L * op.cout * direct_cpad(op.cin);
    default: return 0;
  }
}

long op_dw_scratch_floats(const Op& op) {
  switch (op.code) {
    case OpCode::ConvBwdFilter:
      return static_cast<long>(direct_filter_grad_scratch(DirectShape{op.b.N, op.b.H, op.b.W}, op.k * op.k, op.cin, op.cout));
    case OpCode::ConvTBwd:
      return static_cast<long>(direct_filter_grad_scratch(DirectShape{op.b.N, op.b.H, op.b.W}, 4, op.cout, op.cin));
    default: return 0;
  }
}

void op_conv(float* arena, Net& net, const Op& op, const RunCtx& ctx, float* packed, double* dpart) {
  const View& src = op.a;
  const View& dst = op.b;
  const int taps = op.k * op.k;
  const float* w = net.params.data() + op.w;
  direct_pack(w, static_cast<long>(op.cin) * op.cout, op.cout, 1, taps, op.cin, op.cout, packed);
  Taps tp(src, op.k);
  const DirectIn in = conv_in(arena, src, tp, op.k);
  const DirectShape s{dst.N, dst.H, dst.W};
  const float* bias = op.bias >= 0 ? net.params.data() + op.bias : nullptr;
  if (dst.pad > 0) zero_border(arena, dst);
  const auto mode = static_cast<ConvMode>(op.mode);
  if (mode == ConvMode::BnReluRunning) {
    float* scale = packed + static_cast<long>(taps) * op.cin * direct_cpad(op.cout);
    float* shift = scale + op.cout;
    const float eps = static_cast<float>(ctx.hyper[kBnEps]);
    for (int c = 0; c < op.cout; ++c) {
      scale[c] = net.params[op.gamma + c] / std::sqrt(net.params[op.rvar + c] + eps);
      shift[c] = net.params[op.beta + c] - net.params[op.rmean + c] * scale[c];
    }
    BnReluEpilogue ep(arena, dst, scale, shift);
    direct_forward(in, s, packed, op.cout, ep);
    return;
  }
  const bool stats = mode == ConvMode::RawStats;
  const int tasks = direct_tasks(s);
  if (stats) std::fill(dpart, dpart + static_cast<long>(tasks) * 2 * op.cout, 0.0);
  StoreEpilogue ep(arena, dst, false, bias, stats ? dpart : nullptr, op.cout);
  direct_forward(in, s, packed, op.cout, ep);
  if (!stats) return;
  // Batch moments (biased variance, as tf.moments), reduced over tasks in task order.
  const double M = static_cast<double>(s.N) * s.OH * s.OW;
  float* mean = arena + op.stats;
  float* var = mean + op.cout;
  const double mom = ctx.hyper[kBnMomentum];
  for (int c = 0; c < op.cout; ++c) {
    double s1 = 0, s2 = 0;
    for (int t = 0; t < tasks; ++t) {
      s1 += dpart[static_cast<long>(t) * 2 * op.cout + c];
      s2 += dpart[static_cast<long>(t) * 2 * op.cout + op.cout + c];
    }
    const double m = s1 / M;
    mean[c] = static_cast<float>(m);
    var[c] = static_cast<float>(std::max(0.0, s2 / M - m * m));
    if (mom >= 0 && op.rmean >= 0) {
      // running <- (1 - m) running + m batch (site-agent/model updateRunningStats), in float as tfjs does.
      const float fm = static_cast<float>(mom);
      net.params[op.rmean + c] = net.params[op.rmean + c] * (1 - fm) + mean[c] * fm;
      net.params[op.rvar + c] = net.params[op.rvar + c] * (1 - fm) + var[c] * fm;
    }
  }
}

void op_conv_bwd_input(float* arena, Net& net, const Op& op, float* packed) {
  const View& dy = op.a;
  const View& dx = op.d;
  const int taps = op.k * op.k;
  const long kk = static_cast<long>(op.cin) * op.cout;
  // packed[t'][co][ci] = w[taps-1-t'][ci][co]: the flipped, transposed filter.
  direct_pack(net.params.data() + op.w + (taps - 1) * kk, -kk, 1, op.cout, taps, op.cout, op.cin, packed);
  Taps tp(dy, op.k);
  const DirectIn in = conv_in(arena, dy, tp, op.k);
  if (dx.pad > 0) zero_border(arena, dx);
  StoreEpilogue ep(arena, dx, (op.flags & kAccumulate) != 0, nullptr, nullptr, op.cin);
  direct_forward(in, DirectShape{dx.N, dx.H, dx.W}, packed, op.cin, ep);
}

void op_conv_bwd_filter(float* arena, Net& net, const Op& op, float* dw_scratch, double* dpart) {
  const View& x = op.a;
  const View& dy = op.b;
  Taps tp(x, op.k);
  const DirectIn in = conv_in(arena, x, tp, op.k);
  float* gw = net.grads.data() + op.w;
  direct_filter_grad(in, DirectShape{dy.N, dy.H, dy.W}, arena + dy.at(0, 0, 0), dy.img(), dy.row(), dy.cs, op.cout, gw, dw_scratch);
  if (op.bias >= 0) channel_sums(arena, dy, dpart, net.grads.data() + op.bias);
}

void op_convt(float* arena, Net& net, const Op& op, float* packed) {
  const View& x = op.a;
  const View& dst = op.b;
  // packed[0][ci][t*cout + co] = w[t][co][ci].
  direct_pack(net.params.data() + op.w, 0, 1, op.cin, 1, op.cin, 4 * op.cout, packed);
  const long off0 = 0;
  const DirectIn in{arena + x.at(0, 0, 0), x.img(), x.row(), x.cs, 1, &off0, op.cin};
  if (dst.pad > 0) zero_border(arena, dst);
  ScatterEpilogue ep(arena, dst, net.params.data() + op.bias, op.cout);
  direct_forward(in, DirectShape{x.N, x.H, x.W}, packed, 4 * op.cout, ep);
}

void op_convt_bwd(float* arena, Net& net, const Op& op, float* packed, float* dw_scratch, double* dpart) {
  const View& dy = op.a;  // [N, 2h, 2w, cout]
  const View& x = op.b;   // [N, h, w, cin]
  const View& dx = op.d;
  // dy read at (2y + t/2, 2x + t%2) for pixel (y, x) of the input grid.
  long toff[4];
  for (int t = 0; t < 4; ++t) toff[t] = (t / 2) * dy.row() + (t % 2) * dy.cs;
  const DirectIn in{arena + dy.at(0, 0, 0), dy.img(), 2 * dy.row(), 2L * dy.cs, 4, toff, op.cout};
  const DirectShape s{x.N, x.H, x.W};
  if (dx.N > 0) {
    // dx[ci] = sum_t sum_co dy(t)[co] * w[t][co][ci]: packed[t][co][ci] = w[t][co][ci].
    direct_pack(net.params.data() + op.w, static_cast<long>(op.cout) * op.cin, op.cin, 1, 4, op.cout, op.cin, packed);
    if (dx.pad > 0) zero_border(arena, dx);
    StoreEpilogue ep(arena, dx, (op.flags & kAccumulate) != 0, nullptr, nullptr, op.cin);
    direct_forward(in, s, packed, op.cin, ep);
  }
  if ((op.flags & kGradParams) == 0) return;
  // dw[t][co][ci] = sum_p dy(2p + t)[co] * x(p)[ci]: the filter-gradient kernel with x in the role of dy.
  direct_filter_grad(in, s, arena + x.at(0, 0, 0), x.img(), x.row(), x.cs, op.cin, net.grads.data() + op.w, dw_scratch);
  channel_sums(arena, dy, dpart, net.grads.data() + op.bias);
}

}  // namespace fedsfda
