// 2-D convolution kernels in TensorFlow's NHWC / HWIO layout, as GEMMs over implicit im2col row blocks.
#pragma once

namespace fedsfda {

struct ConvParams {
  int N, H, W, Cin;     // input
  int OH, OW, Cout;     // output
  int FH, FW;           // filter
  int SH, SW, DH, DW;   // strides, dilations
  int PT, PL;           // padding before (top, left); padding after is implied by the sizes
};

// y[N,OH,OW,Cout] = conv(x[N,H,W,Cin], w[FH,FW,Cin,Cout]) (+ bias[Cout]) (relu when relu).
void conv2d_forward(const float* x, const float* w, float* y, const ConvParams& p, const float* bias, bool relu);
// dx[N,H,W,Cin] = d conv / d x applied to dy[N,OH,OW,Cout].
void conv2d_backprop_input(const float* dy, const float* w, float* dx, const ConvParams& p);
// dw[FH,FW,Cin,Cout] = d conv / d w applied to dy.
void conv2d_backprop_filter(const float* x, const float* dy, float* dw, const ConvParams& p);

}  // namespace fedsfda
