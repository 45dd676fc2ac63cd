// Direct ("implicit GEMM") convolution kernels over NHWC buffers whose padding is materialised, for the
// compiled plans (plan.h). No im2col copy: a register tile of MR output pixels x NV channel vectors
// accumulates sum_t sum_ci in(pixel, t, ci) * w[t][ci][:], reading the input in place with a broadcast per
// (pixel, ci) and a vector of the packed filter per ci. The same two drivers run the forward pass, the
// input gradient (a convolution of dy with the flipped, transposed filter), 1x1 convolutions (the head,
// transposed 2x2 stride-2 convolutions as 1x1 with 4*Cout outputs) and every filter gradient.
//
// Determinism (thread-pool.h): tasks are fixed partitions of the output rows (shape only); the filter
// gradient reduces one partial per fixed group of rows, summed in group order.
#pragma once
#include <cstddef>

namespace fedsfda {

// Where the kernels read input channels for output pixel (n, y, x) and tap t:
// base + n*img + y*row + x*px + tap_off[t], then cin contiguous floats. Strides include the conv stride.
struct DirectIn {
  const float* base;
  long img, row, px;
  int taps;
  const long* tap_off;
  int cin;
};

struct DirectShape {
  int N, OH, OW;
};

// Vector lanes used for `cout` output channels (8 when cout <= 8 or without AVX-512, else 16) and the padded
// channel count of the packed filter rows.
int direct_lanes(int cout);
int direct_cpad(int cout);

// Packs a filter for the kernels: out[t][ci][co] (row length direct_cpad(cout), zero padded) =
// w[t*ts + ci*cs + co*os].
void direct_pack(const float* w, long ts, long cs, long os, int taps, int cin, int cout, float* out);

// Receives one finished register tile: pixels (n, y, x0 + r) for r < rows, channels col0 + c for c < cols,
// value tmp[r * ld + c]. `task` identifies the row partition (for per-task partial sums).
class DirectEpilogue {
 public:
  virtual ~DirectEpilogue() = default;
  virtual void tile(int task, int n, int y, int x0, int rows, int col0, int cols, const float* tmp, int ld) = 0;
};

// The fixed row partition used by direct_forward: number of tasks, and task t's rows [r0, r1) of N*OH.
int direct_tasks(const DirectShape& s);
void direct_task_rows(const DirectShape& s, int task, int* r0, int* r1);

// out(n, y, x, co) = sum_t sum_ci in(n, y, x, t, ci) * wp[t][ci][co], delivered to ep (parallel over tasks).
void direct_forward(const DirectIn& in, const DirectShape& s, const float* wp, int cout, DirectEpilogue& ep);

// Floats of scratch direct_filter_grad needs.
size_t direct_filter_grad_scratch(const DirectShape& s, int taps, int cin, int cout);

// Filter gradient: out[t][ci][co] = sum over pixels of in(n, y, x, t, ci) * dy(n, y, x, co), with
// dy(n, y, x, co) = dy[n*dimg + y*drow + x*dpx + co]. out is dense [taps][cin][cout].
void direct_filter_grad(const DirectIn& in, const DirectShape& s, const float* dy, long dimg, long drow, long dpx, int cout,
                        float* out, float* scratch);

}  // namespace fedsfda
