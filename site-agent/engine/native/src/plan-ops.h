// The ops of a compiled plan (plan.h), one function each. `arena` is the program's activation arena, `net`
// its parameters; every op is deterministic (fixed task partitions, partial sums combined in order).
#pragma once
#include <functional>

#include "plan.h"

namespace fedsfda {

// parallel_for with the plans' serial threshold (memory-bound ops under ~64k elements stay on the caller).
void plan_parallel(long work, int tasks, const std::function<void(int, int)>& fn);
// Fixed row partition for elementwise ops over N*H rows of W*C elements.
int plan_row_tasks(int rows, long row_elems, int* per);

// Zeroes the border ring (width pad) of the view's channels.
void zero_border(float* arena, const View& v);

void op_input(float* arena, const Op& op, const RunCtx& ctx);
// scratch: this op's packed filter; dpart: per-task partial sums (doubles).
void op_conv(float* arena, Net& net, const Op& op, const RunCtx& ctx, float* packed, double* dpart);
void op_conv_bwd_input(float* arena, Net& net, const Op& op, float* packed);
void op_conv_bwd_filter(float* arena, Net& net, const Op& op, float* dw_scratch, double* dpart);
void op_convt(float* arena, Net& net, const Op& op, float* packed);
void op_convt_bwd(float* arena, Net& net, const Op& op, float* packed, float* dw_scratch, double* dpart);
void op_bn_relu(float* arena, Net& net, const Op& op, const RunCtx& ctx);
void op_bn_relu_bwd(float* arena, Net& net, const Op& op, const RunCtx& ctx, double* dpart);
void op_maxpool(float* arena, const Op& op);
void op_maxpool_bwd(float* arena, const Op& op);
void op_upsample(float* arena, const Op& op);
void op_upsample_bwd(float* arena, const Op& op);
void op_loss(float* arena, const Op& op, RunCtx& ctx, double* dpart);

// Scratch sizes (floats / doubles) an op needs.
long op_packed_floats(const Op& op);
long op_dw_scratch_floats(const Op& op);
long op_partial_doubles(const Op& op);

}  // namespace fedsfda
