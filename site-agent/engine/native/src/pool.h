// Max pooling (NHWC) forward and gradient with TensorFlow.js cpu semantics: windows skip padding, the
// gradient goes to the first maximum in row-major window order.
#pragma once

namespace fedsfda {

struct PoolParams {
  int N, H, W, C, OH, OW, FH, FW, SH, SW, DH, DW, PT, PL;
};

void maxpool_forward(const float* x, float* y, const PoolParams& p);
void maxpool_backward(const float* dy, const float* x, float* dx, const PoolParams& p);

}  // namespace fedsfda
