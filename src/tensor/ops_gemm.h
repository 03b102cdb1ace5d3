/* ops_gemm.h: matrix products: GEMM kernels, matmul, batched matmul, linear.
 *
 * Owns: the row-major GEMM used by every op (OpenBLAS sgemm, with a plain
 * double-accumulating reference kernel beside it), and the graph operations
 * built on it with their backward. Does not own convolutions (ops_conv.h) or
 * attention (ops_attn.h), which call the GEMM kernel. */
#ifndef IT_OPS_GEMM_H
#define IT_OPS_GEMM_H

#include <stdint.h>

#include "tensor/tensor.h"

/* C (M, N) = alpha * op(A) op(B) + beta * C, row-major. op(A) is (M, K):
 * A is (M, K) with leading dim lda, or (K, M) when trans_a. Same for B:
 * (K, N) or (N, K) when trans_b. beta == 0 ignores C's old contents. */
void it_cpu_gemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                 const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                 int64_t ldc);
void it_cpu_gemm_ref(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                     const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                     float *C, int64_t ldc);

/* Matrix product over the last two dims.
 * a: (batch..., M, K), or (batch..., K, M) when trans_a
 * b: (K, N) shared by every batch, or (batch..., K, N); (.., N, K) when trans_b
 * returns (batch..., M, N). */
it_tensor *it_op_matmul(it_ctx *ctx, it_tensor *a, it_tensor *b, int trans_a, int trans_b);

/* PyTorch nn.Linear: x (..., in), w (out, in), b (out) or NULL -> (..., out). */
it_tensor *it_op_linear(it_ctx *ctx, it_tensor *x, it_tensor *w, it_tensor *b);

#endif
