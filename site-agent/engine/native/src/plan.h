// Compiled plans: a network's forward, loss, backward and optimizer update as a fixed sequence of kernel
// calls over one activation arena whose buffer offsets were planned once (site-agent/engine/plan/*.ts builds
// the op list). Parameters, their gradients and optimizer state live in a `Net`, shared by every program
// compiled for it (training at one shape, inference at another...). The arena and scratch memory belong to
// the calling thread's workspace, shared by every program that thread runs (a run reads nothing a previous
// run left there), so many models in one process (a simulation of many sites) need one arena, not one each.
// Nothing is allocated per run once the workspace has grown to the largest program.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace fedsfda {

// A 4-D NHWC region of the activation arena. Element (n, y, x, c) of the view is at
// off + ((n * (H + 2*pad) + y + pad) * (W + 2*pad) + x + pad) * cs + c0 + c; the border of width `pad`
// is materialised (zeros written by the op that writes the view). cs is the buffer's channel count, so a
// view can be a channel slice of a wider buffer (the two halves of a U-Net concatenation).
struct View {
  int32_t off, N, H, W, C, pad, cs, c0;
  long img() const { return static_cast<long>(H + 2 * pad) * (W + 2 * pad) * cs; }
  long row() const { return static_cast<long>(W + 2 * pad) * cs; }
  // Offset of interior element (n, y, x, channel 0 of the view).
  long at(int n, int y, int x) const {
    return off + ((static_cast<long>(n) * (H + 2 * pad) + y + pad) * (W + 2 * pad) + x + pad) * cs + c0;
  }
  long extent() const { return static_cast<long>(N) * img(); }
};

enum class OpCode : int32_t {
  Input = 1,          // dst <- the run's input images (dense N,H,W,C)
  Conv = 2,           // k x k stride-1 'same' convolution (k = 1 or 3), epilogue per `mode`
  BnRelu = 3,         // dst = relu(src * scale + shift), BN with batch or running statistics
  MaxPool = 4,        // 2x2 stride 2
  Upsample = 5,       // nearest, 2x
  ConvT = 6,          // 2x2 stride-2 transposed convolution + bias
  Loss = 7,           // softmax losses over logits -> loss value and d loss / d logits
  ConvBwdInput = 8,   // dx (=/+=) conv^T(dy)
  ConvBwdFilter = 9,  // dw (and bias gradient) of a Conv; optional fused optimizer update
  BnReluBwd = 10,     // through ReLU and BN: dgamma, dbeta (optional fused update) and d(conv output)
  MaxPoolBwd = 11,    // dx += routed dy
  UpsampleBwd = 12,   // dx = 2x2 sums of dy
  ConvTBwd = 13,      // dx, dw, db of ConvT; optional fused update
};

enum class LossKind : int32_t { CrossEntropy = 1, Dice = 2, CrossEntropyDice = 3, Entropy = 4 };

// Conv epilogues: raw output; raw output + batch moments; relu(bn_running(output)) (inference).
enum class ConvMode : int32_t { Raw = 0, RawStats = 1, BnReluRunning = 2 };

struct Op {
  OpCode code;
  View a, b, c, d;  // operands (meaning per op, see plan.cc)
  int32_t k = 0, cin = 0, cout = 0, mode = 0, flags = 0;
  int32_t w = -1, bias = -1, gamma = -1, beta = -1, rmean = -1, rvar = -1;  // parameter offsets
  int32_t stats = -1;   // arena offset of [mean(C), var(C)] (batch moments)
  int32_t extra = -1;   // arena offset of an op-specific buffer (Loss: d logits)
  long packed = -1;     // offset into the program's scratch of this op's packed filter
};

// Op flags.
constexpr int32_t kAccumulate = 1;    // add into the destination instead of overwriting
constexpr int32_t kUpdate = 2;        // apply the optimizer to the parameters this op produced gradients for
constexpr int32_t kGradParams = 4;    // compute parameter gradients (else only the input gradient)
constexpr int32_t kRunningStats = 8;  // BN uses (and, in training, updates) running statistics

// Per-run scalars (indices into the hyper array given to run()).
enum Hyper {
  kOptKind = 0,      // 0 none (gradients only), 1 sgd, 2 momentum, 3 adam
  kLr = 1,
  kMomentum = 2,
  kBeta1 = 3,
  kBeta2 = 4,
  kAdamEps = 5,
  kWeightDecay = 6,
  kProxMu = 7,       // FedProx: gradient += mu * (w - anchor)
  kStep = 8,         // 1-based Adam step
  kBnMomentum = 9,   // running <- (1 - m) running + m batch; < 0: running statistics not updated
  kBnEps = 10,
  kHyperCount = 11,
};

struct Net {
  std::vector<float> params, grads, m, v, anchor;
};

struct RunCtx {
  const float* x = nullptr;
  long x_len = 0;
  const int32_t* labels = nullptr;
  long labels_len = 0;
  double hyper[kHyperCount] = {};
  double loss = 0;
};

// Per-thread arena + scratch, grown on demand (64-byte aligned, zero slack after the end).
struct Workspace {
  float* arena = nullptr;
  long arena_n = 0;
  float* scratch = nullptr;
  long scratch_n = 0;
  // False when memory could not be allocated.
  bool ensure(long arena_floats, long scratch_floats);
  ~Workspace();
};
Workspace& thread_workspace();

class Program {
 public:
  // Validates every op against the arena and parameter sizes; on error returns false with a message.
  bool init(Net* net, std::vector<Op> ops, long arena_floats, std::string* err);
  // False when the workspace could not grow to this program's size.
  bool run(RunCtx& ctx);
  long arena_size() const { return arena_n_; }
  long scratch_size() const { return scratch_n_; }
  // Per op of the last run: wall and process-CPU milliseconds, interleaved (profiles).
  const std::vector<double>& op_ms() const { return op_ms_; }
  const std::vector<Op>& ops() const { return ops_; }

 private:
  void exec(const Op& op, RunCtx& ctx, float* arena, float* scratch);
  void update(long off, long n, const RunCtx& ctx);
  Net* net_ = nullptr;
  std::vector<Op> ops_;
  long arena_n_ = 0;
  long scratch_n_ = 0;   // [packed filters of every op][filter-gradient partials][double partial sums]
  long dw_off_ = 0;
  long dpart_off_ = 0;
  std::vector<double> op_ms_;
};

}  // namespace fedsfda
