// Memory-bound ops of the compiled plans: input placement, batch norm + ReLU (forward and backward, Ioffe &
// Szegedy 2015, Alg. 1 and sec. 3), 2x2 max pooling, nearest 2x upsampling, and their gradients.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "direct-conv.h"
#include "plan-ops.h"
#include "thread-pool.h"

namespace fedsfda {

namespace {
constexpr long kPlanSerialBelow = 1L << 16;
}

void plan_parallel(long work, int tasks, const std::function<void(int, int)>& fn) {
  if (work < kPlanSerialBelow) {
    for (int t = 0; t < tasks; ++t) fn(t, 0);
    return;
  }
  parallel_for(tasks, fn);
}

int plan_row_tasks(int rows, long row_elems, int* per) {
  *per = static_cast<int>(std::max(1L, 16384 / std::max(1L, row_elems)));
  return (rows + *per - 1) / *per;
}

namespace {

// fn(n, y) for every row of an N x H grid, in fixed row tasks.
template <typename F>
void for_rows(int N, int H, long row_elems, F fn) {
  int per;
  const int tasks = plan_row_tasks(N * H, row_elems, &per);
  plan_parallel(static_cast<long>(N) * H * row_elems, tasks, [&](int t, int) {
    const int r1 = std::min(N * H, (t + 1) * per);
    for (int r = t * per; r < r1; ++r) fn(t, r / H, r % H);
  });
}

}  // namespace

void zero_border(float* arena, const View& v) {
  if (v.pad == 0) return;
  const int HP = v.H + 2 * v.pad, WP = v.W + 2 * v.pad;
  for (int n = 0; n < v.N; ++n)
    for (int y = 0; y < HP; ++y) {
      const bool full = y < v.pad || y >= v.H + v.pad;
      float* row = arena + v.off + (static_cast<long>(n) * HP + y) * WP * v.cs + v.c0;
      for (int x = 0; x < WP; ++x) {
        if (!full && x >= v.pad && x < v.W + v.pad) { x = v.W + v.pad - 1; continue; }
        std::memset(row + static_cast<long>(x) * v.cs, 0, sizeof(float) * v.C);
      }
    }
}

void op_input(float* arena, const Op& op, const RunCtx& ctx) {
  const View& d = op.a;
  zero_border(arena, d);
  for_rows(d.N, d.H, static_cast<long>(d.W) * d.C, [&](int, int n, int y) {
    const float* src = ctx.x + ((static_cast<long>(n) * d.H + y) * d.W) * d.C;
    for (int x = 0; x < d.W; ++x) std::memcpy(arena + d.at(n, y, x), src + static_cast<long>(x) * d.C, sizeof(float) * d.C);
  });
}

namespace {

// Per-channel scale and shift of a BN: scale = gamma / sqrt(var + eps), shift = beta - mean * scale, with
// the batch moments (arena) or the running statistics (params, kRunningStats).
void bn_affine(const float* arena, const Net& net, const Op& op, float eps, float* scale, float* shift, float* mean_out,
               float* rstd_out) {
  const int C = op.cout;
  const bool running = (op.flags & kRunningStats) != 0;
  for (int c = 0; c < C; ++c) {
    const float mean = running ? net.params[op.rmean + c] : arena[op.stats + c];
    const float var = running ? net.params[op.rvar + c] : arena[op.stats + C + c];
    const float rstd = 1.f / std::sqrt(var + eps);
    scale[c] = net.params[op.gamma + c] * rstd;
    shift[c] = net.params[op.beta + c] - mean * scale[c];
    if (mean_out) mean_out[c] = mean;
    if (rstd_out) rstd_out[c] = rstd;
  }
}

}  // namespace

void op_bn_relu(float* arena, Net& net, const Op& op, const RunCtx& ctx) {
  const View& y = op.a;
  const View& o = op.b;
  const int C = op.cout;
  float scale[1024], shift[1024];
  bn_affine(arena, net, op, static_cast<float>(ctx.hyper[kBnEps]), scale, shift, nullptr, nullptr);
  if (o.pad > 0) zero_border(arena, o);
  for_rows(y.N, y.H, static_cast<long>(y.W) * C, [&](int, int n, int r) {
    for (int x = 0; x < y.W; ++x) {
      const float* s = arena + y.at(n, r, x);
      float* d = arena + o.at(n, r, x);
      for (int c = 0; c < C; ++c) d[c] = std::max(0.f, s[c] * scale[c] + shift[c]);
    }
  });
}

void op_bn_relu_bwd(float* arena, Net& net, const Op& op, const RunCtx& ctx, double* dpart) {
  const View& dO = op.a;
  const View& O = op.b;
  const View& Y = op.c;
  const View& dY = op.d;
  const int C = op.cout;
  const int Wd = Y.W;
  const bool running = (op.flags & kRunningStats) != 0;
  const bool grads = (op.flags & kGradParams) != 0;
  float scale[1024], shift[1024], mean[1024], rstd[1024];
  bn_affine(arena, net, op, static_cast<float>(ctx.hyper[kBnEps]), scale, shift, mean, rstd);
  const long M = static_cast<long>(Y.N) * Y.H * Y.W;
  double dbeta[1024], dgamma[1024];
  int per;
  const int tasks = plan_row_tasks(Y.N * Y.H, static_cast<long>(Wd) * C, &per);
  // Pass 1: dbeta = sum dz, dgamma = sum dz * xhat, dz = dO where the ReLU was active (O > 0). Each image row
  // is summed in float, rows are added in double, tasks in task order.
  if (grads || !running) {
    plan_parallel(M * C, tasks, [&](int t, int) {
      double* sb = dpart + static_cast<long>(t) * 2 * C;
      double* sg = sb + C;
      std::fill(sb, sb + 2 * C, 0.0);
      float rb[1024], rg[1024];
      const int r1 = std::min(Y.N * Y.H, (t + 1) * per);
      for (int r = t * per; r < r1; ++r) {
        const int n = r / Y.H, yy = r % Y.H;
        const float* __restrict go = arena + dO.at(n, yy, 0);
        const float* __restrict o = arena + O.at(n, yy, 0);
        const float* __restrict v = arena + Y.at(n, yy, 0);
        for (int c = 0; c < C; ++c) rb[c] = rg[c] = 0.f;
        for (int x = 0; x < Wd; ++x, go += dO.cs, o += O.cs, v += Y.cs) {
          for (int c = 0; c < C; ++c) {
            const float dz = o[c] > 0.f ? go[c] : 0.f;
            rb[c] += dz;
            rg[c] += dz * ((v[c] - mean[c]) * rstd[c]);
          }
        }
        for (int c = 0; c < C; ++c) {
          sb[c] += rb[c];
          sg[c] += rg[c];
        }
      }
    });
    for (int c = 0; c < C; ++c) {
      double b = 0, g = 0;
      for (int t = 0; t < tasks; ++t) {
        b += dpart[static_cast<long>(t) * 2 * C + c];
        g += dpart[static_cast<long>(t) * 2 * C + C + c];
      }
      dbeta[c] = b;
      dgamma[c] = g;
    }
  }
  // Pass 2: dY = gamma * rstd * (dz - dbeta / M - xhat * dgamma / M) (batch statistics), or
  // gamma * rstd * dz (running statistics: the moments are constants).
  float k1[1024], k2[1024], k3[1024];
  for (int c = 0; c < C; ++c) {
    k1[c] = scale[c];
    k2[c] = running ? 0.f : static_cast<float>(dbeta[c] / M);
    k3[c] = running ? 0.f : static_cast<float>(dgamma[c] / M) * rstd[c];
  }
  if (dY.pad > 0) zero_border(arena, dY);
  for_rows(Y.N, Y.H, static_cast<long>(Wd) * C, [&](int, int n, int yy) {
    const float* __restrict go = arena + dO.at(n, yy, 0);
    const float* __restrict o = arena + O.at(n, yy, 0);
    const float* __restrict v = arena + Y.at(n, yy, 0);
    float* __restrict d = arena + dY.at(n, yy, 0);
    for (int x = 0; x < Wd; ++x, go += dO.cs, o += O.cs, v += Y.cs, d += dY.cs) {
      for (int c = 0; c < C; ++c) {
        const float dz = o[c] > 0.f ? go[c] : 0.f;
        d[c] = k1[c] * (dz - k2[c] - (v[c] - mean[c]) * k3[c]);
      }
    }
  });
  if (grads) {
    for (int c = 0; c < C; ++c) {
      net.grads[op.gamma + c] = static_cast<float>(dgamma[c]);
      net.grads[op.beta + c] = static_cast<float>(dbeta[c]);
    }
  }
}

void op_maxpool(float* arena, const Op& op) {
  const View& s = op.a;
  const View& d = op.b;
  const int C = s.C;
  if (d.pad > 0) zero_border(arena, d);
  for_rows(d.N, d.H, static_cast<long>(d.W) * C * 4, [&](int, int n, int y) {
    for (int x = 0; x < d.W; ++x) {
      const float* p00 = arena + s.at(n, 2 * y, 2 * x);
      const float* p01 = arena + s.at(n, 2 * y, 2 * x + 1);
      const float* p10 = arena + s.at(n, 2 * y + 1, 2 * x);
      const float* p11 = arena + s.at(n, 2 * y + 1, 2 * x + 1);
      float* o = arena + d.at(n, y, x);
      for (int c = 0; c < C; ++c) o[c] = std::max(std::max(p00[c], p01[c]), std::max(p10[c], p11[c]));
    }
  });
}

namespace {

typedef float vf8 __attribute__((vector_size(32), aligned(4)));
typedef int vi8 __attribute__((vector_size(32), aligned(4)));

// Routes g to the first maximum of the 2x2 window (a, b, c2, e) in window order (tfjs maxPoolPositions:
// strict >), with vector selects: a data-dependent branch here mispredicts on every other element (20x slower).
template <bool ACC>
inline void route_max(const float* a, const float* b, const float* c2, const float* e, const float* g, float* qa, float* qb,
                      float* qc, float* qe, int C) {
  int c = 0;
  for (; c + 8 <= C; c += 8) {
    const vf8 A = *reinterpret_cast<const vf8*>(a + c), B = *reinterpret_cast<const vf8*>(b + c);
    const vf8 Cv = *reinterpret_cast<const vf8*>(c2 + c), E = *reinterpret_cast<const vf8*>(e + c);
    const vf8 G = *reinterpret_cast<const vf8*>(g + c);
    const vi8 s1 = B > A;
    const vf8 m1 = s1 ? B : A;
    const vi8 s2 = Cv > m1;
    const vf8 m2 = s2 ? Cv : m1;
    const vi8 s3 = E > m2;
    const vf8 z = {};
    const vf8 v3 = s3 ? G : z, v2 = (s2 & ~s3) ? G : z, v1 = (s1 & ~(s2 | s3)) ? G : z, v0 = ~(s1 | s2 | s3) ? G : z;
    vf8* o[4] = {reinterpret_cast<vf8*>(qa + c), reinterpret_cast<vf8*>(qb + c), reinterpret_cast<vf8*>(qc + c), reinterpret_cast<vf8*>(qe + c)};
    const vf8 v[4] = {v0, v1, v2, v3};
    for (int t = 0; t < 4; ++t) *o[t] = ACC ? *o[t] + v[t] : v[t];
  }
  for (; c < C; ++c) {
    int best = 0;
    float m = a[c];
    if (b[c] > m) { m = b[c]; best = 1; }
    if (c2[c] > m) { m = c2[c]; best = 2; }
    if (e[c] > m) best = 3;
    float* q[4] = {qa, qb, qc, qe};
    for (int t = 0; t < 4; ++t) {
      const float v = t == best ? g[c] : 0.f;
      q[t][c] = ACC ? q[t][c] + v : v;
    }
  }
}

}  // namespace

void op_maxpool_bwd(float* arena, const Op& op) {
  const View& dy = op.a;
  const View& x = op.b;
  const View& dx = op.d;
  const int C = x.C;
  const bool acc = (op.flags & kAccumulate) != 0;
  for_rows(dy.N, dy.H, static_cast<long>(dy.W) * C * 4, [&](int, int n, int y) {
    const float* g = arena + dy.at(n, y, 0);
    const float* p0 = arena + x.at(n, 2 * y, 0);
    const float* p1 = arena + x.at(n, 2 * y + 1, 0);
    float* q0 = arena + dx.at(n, 2 * y, 0);
    float* q1 = arena + dx.at(n, 2 * y + 1, 0);
    for (int xx = 0; xx < dy.W; ++xx, g += dy.cs, p0 += 2 * x.cs, p1 += 2 * x.cs, q0 += 2 * dx.cs, q1 += 2 * dx.cs) {
      if (acc) route_max<true>(p0, p0 + x.cs, p1, p1 + x.cs, g, q0, q0 + dx.cs, q1, q1 + dx.cs, C);
      else route_max<false>(p0, p0 + x.cs, p1, p1 + x.cs, g, q0, q0 + dx.cs, q1, q1 + dx.cs, C);
    }
  });
}

void op_upsample(float* arena, const Op& op) {
  const View& s = op.a;
  const View& d = op.b;
  const int C = s.C;
  if (d.pad > 0) zero_border(arena, d);
  for_rows(d.N, d.H, static_cast<long>(d.W) * C, [&](int, int n, int y) {
    for (int x = 0; x < d.W; ++x) std::memcpy(arena + d.at(n, y, x), arena + s.at(n, y / 2, x / 2), sizeof(float) * C);
  });
}

void op_upsample_bwd(float* arena, const Op& op) {
  const View& dy = op.a;
  const View& dx = op.d;
  const int C = dx.C;
  const bool acc = (op.flags & kAccumulate) != 0;
  for_rows(dx.N, dx.H, static_cast<long>(dx.W) * C * 4, [&](int, int n, int y) {
    for (int x = 0; x < dx.W; ++x) {
      const float* a = arena + dy.at(n, 2 * y, 2 * x);
      const float* b = arena + dy.at(n, 2 * y, 2 * x + 1);
      const float* c2 = arena + dy.at(n, 2 * y + 1, 2 * x);
      const float* e = arena + dy.at(n, 2 * y + 1, 2 * x + 1);
      float* o = arena + dx.at(n, y, x);
      for (int c = 0; c < C; ++c) {
        const float v = a[c] + b[c] + c2[c] + e[c];
        if (acc) o[c] += v;
        else o[c] = v;
      }
    }
  });
}

long op_partial_doubles(const Op& op) {
  auto rows_tasks = [](const View& v, long row_elems) {
    int per;
    return static_cast<long>(plan_row_tasks(v.N * v.H, row_elems, &per));
  };
  switch (op.code) {
    case OpCode::Conv: return static_cast<long>(direct_tasks(DirectShape{op.b.N, op.b.H, op.b.W})) * 2 * op.cout;
    case OpCode::ConvBwdFilter: return rows_tasks(op.b, static_cast<long>(op.b.W) * op.b.C) * op.b.C;
    case OpCode::ConvTBwd: return rows_tasks(op.a, static_cast<long>(op.a.W) * op.a.C) * op.a.C;
    case OpCode::BnReluBwd: return rows_tasks(op.c, static_cast<long>(op.c.W) * op.cout) * 2 * op.cout;
    case OpCode::Loss: return rows_tasks(op.a, static_cast<long>(op.a.W) * op.a.C) * (3L * op.k + 2);
    default: return 0;
  }
}

}  // namespace fedsfda
