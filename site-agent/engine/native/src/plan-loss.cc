// Loss op of the compiled plans: softmax losses over logits [P, K] (class axis last), the same definitions as
// site-agent/train/losses.ts, each averaged so that it does not depend on the batch size:
//   cross-entropy  mean_i -log softmax(z_i)[y_i]
//   soft Dice      1 - mean_{c >= 1} (2 sum_i p_ic y_ic + s) / (sum_i p_ic + sum_i y_ic + s), s = 1e-5
//                  (Milletari et al., V-Net, 3DV 2016, eq. 1 without squares, pooled over the batch; MONAI)
//   entropy        mean_i -sum_c p_ic log p_ic (TENT, Wang et al., ICLR 2021, eq. 2)
// Two passes: sums (doubles, fixed row tasks combined in order), then d loss / d logits per pixel.
#include <algorithm>
#include <cmath>

#include "plan-ops.h"

namespace fedsfda {
namespace {

constexpr double kDiceSmooth = 1e-5;
constexpr int kMaxClasses = 256;

// Softmax of one pixel's logits: p (probabilities) and logp.
inline void softmax(const float* z, int K, float* p, float* logp) {
  float m = z[0];
  for (int c = 1; c < K; ++c) m = std::max(m, z[c]);
  float s = 0.f;
  for (int c = 0; c < K; ++c) {
    p[c] = std::exp(z[c] - m);
    s += p[c];
  }
  const float ls = std::log(s);
  const float inv = 1.f / s;
  for (int c = 0; c < K; ++c) {
    p[c] *= inv;
    logp[c] = z[c] - m - ls;
  }
}

}  // namespace

void op_loss(float* arena, const Op& op, RunCtx& ctx, double* dpart) {
  const View& lg = op.a;
  const int K = op.k;
  const auto kind = static_cast<LossKind>(op.mode);
  const bool ce = kind == LossKind::CrossEntropy || kind == LossKind::CrossEntropyDice;
  const bool dice = kind == LossKind::Dice || kind == LossKind::CrossEntropyDice;
  const bool ent = kind == LossKind::Entropy;
  const long P = static_cast<long>(lg.N) * lg.H * lg.W;
  const int W = lg.W;
  const int stride = 2 + 3 * K;  // [ce, entropy, inter[K], psum[K], ysum[K]]
  int per;
  const int tasks = plan_row_tasks(lg.N * lg.H, static_cast<long>(W) * K, &per);
  const int32_t* labels = ctx.labels;
  plan_parallel(P * K, tasks, [&](int t, int) {
    double* s = dpart + static_cast<long>(t) * stride;
    std::fill(s, s + stride, 0.0);
    float p[kMaxClasses], logp[kMaxClasses];
    const int r1 = std::min(lg.N * lg.H, (t + 1) * per);
    for (int r = t * per; r < r1; ++r)
      for (int x = 0; x < W; ++x) {
        const long i = static_cast<long>(r) * W + x;
        softmax(arena + lg.at(r / lg.H, r % lg.H, x), K, p, logp);
        if (ent) {
          double h = 0;
          for (int c = 0; c < K; ++c) h -= static_cast<double>(p[c]) * logp[c];
          s[1] += h;
          continue;
        }
        const int y = labels[i];
        s[0] -= logp[y];
        s[2 + y] += p[y];
        for (int c = 0; c < K; ++c) s[2 + K + c] += p[c];
        s[2 + 2 * K + y] += 1;
      }
  });
  double tot[2 + 3 * kMaxClasses] = {};
  for (int t = 0; t < tasks; ++t)
    for (int j = 0; j < stride; ++j) tot[j] += dpart[static_cast<long>(t) * stride + j];
  const double* inter = tot + 2;
  const double* psum = tot + 2 + K;
  const double* ysum = tot + 2 + 2 * K;
  double loss = 0;
  if (ce) loss += tot[0] / P;
  if (ent) loss += tot[1] / P;
  // d dice_loss / d p_c for c >= 1 is a per-pixel affine function of y_c: a_c + b_c * y_c.
  float da[kMaxClasses] = {}, db[kMaxClasses] = {};
  if (dice) {
    double mean_dice = 0;
    for (int c = 1; c < K; ++c) {
      const double den = psum[c] + ysum[c] + kDiceSmooth;
      const double num = 2 * inter[c] + kDiceSmooth;
      mean_dice += num / den;
      da[c] = static_cast<float>(num / (den * den) / (K - 1));
      db[c] = static_cast<float>(-2.0 / den / (K - 1));
    }
    loss += 1 - mean_dice / (K - 1);
  }
  ctx.loss = loss;
  if (op.extra < 0) return;
  const View dl{op.extra, lg.N, lg.H, lg.W, K, 0, K, 0};
  const float invP = static_cast<float>(1.0 / P);
  plan_parallel(P * K, tasks, [&](int t, int) {
    float p[kMaxClasses], logp[kMaxClasses], g[kMaxClasses];
    const int r1 = std::min(lg.N * lg.H, (t + 1) * per);
    for (int r = t * per; r < r1; ++r)
      for (int x = 0; x < W; ++x) {
        const long i = static_cast<long>(r) * W + x;
        softmax(arena + lg.at(r / lg.H, r % lg.H, x), K, p, logp);
        float* o = arena + dl.at(r / lg.H, r % lg.H, x);
        if (ent) {
          float h = 0.f;
          for (int c = 0; c < K; ++c) h -= p[c] * logp[c];
          for (int c = 0; c < K; ++c) o[c] = -invP * p[c] * (logp[c] + h);
          continue;
        }
        const int y = labels[i];
        for (int c = 0; c < K; ++c) o[c] = 0.f;
        if (ce) {
          for (int c = 0; c < K; ++c) o[c] = p[c] * invP;
          o[y] -= invP;
        }
        if (dice) {
          // Through the softmax: dz_c = p_c (g_c - sum_k g_k p_k).
          float gp = 0.f;
          for (int c = 0; c < K; ++c) {
            g[c] = c == 0 ? 0.f : da[c] + (c == y ? db[c] : 0.f);
            gp += g[c] * p[c];
          }
          for (int c = 0; c < K; ++c) o[c] += p[c] * (g[c] - gp);
        }
      }
  });
}

}  // namespace fedsfda
