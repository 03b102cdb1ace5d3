/* ops_conv.h: 2-D convolution (NCHW), forward and backward.
 *
 * Owns: the direct reference kernel (double accumulation), the fast kernels
 * (1x1 stride-1 convolutions as one GEMM on the input itself; every other
 * kernel size through im2col + GEMM, one sample at a time so the column
 * buffer stays bounded), and the graph operation. Does not own padding
 * modes other than symmetric zero padding, dilation or groups (SD does not
 * use them; the VAE's asymmetric downsampling pad belongs to the model). */
#ifndef IT_OPS_CONV_H
#define IT_OPS_CONV_H

#include <stdint.h>

#include "tensor/tensor.h"

typedef struct it_conv2d_shape {
    int64_t n, c_in, h, w;        /* input (n, c_in, h, w) */
    int64_t c_out, kh, kw;        /* weight (c_out, c_in, kh, kw) */
    int64_t stride, pad;          /* same in both directions */
    int64_t h_out, w_out;         /* output (n, c_out, h_out, w_out) */
} it_conv2d_shape;

/* Fills h_out/w_out; 0 if the geometry is invalid. */
int it_conv2d_shape_init(it_conv2d_shape *s);
/* Floats of scratch the fast kernels need (0 for the 1x1 path). */
int64_t it_conv2d_scratch(const it_conv2d_shape *s);

/* y = conv(x, w) + b (b may be NULL). */
void it_cpu_conv2d_fwd_ref(const it_conv2d_shape *s, float *y, const float *x, const float *w, const float *b);
void it_cpu_conv2d_fwd(const it_conv2d_shape *s, float *y, const float *x, const float *w, const float *b,
                       float *scratch);
/* Accumulates into dx, dw, db (any may be NULL). */
void it_cpu_conv2d_bwd_ref(const it_conv2d_shape *s, float *dx, float *dw, float *db, const float *dy,
                           const float *x, const float *w);
void it_cpu_conv2d_bwd(const it_conv2d_shape *s, float *dx, float *dw, float *db, const float *dy,
                       const float *x, const float *w, float *scratch);

/* x: (N, Cin, H, W), w: (Cout, Cin, kh, kw), b: (Cout) or NULL
 * -> (N, Cout, (H + 2 pad - kh) / stride + 1, (W + 2 pad - kw) / stride + 1). */
it_tensor *it_op_conv2d(it_ctx *ctx, it_tensor *x, it_tensor *w, it_tensor *b, int64_t stride, int64_t pad);

#endif
