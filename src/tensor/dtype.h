/* dtype.h: element types and exact conversions between them.
 *
 * Owns: the it_dtype enum shared by tensors, safetensors and models; element
 * sizes and names (safetensors spelling); f16/bf16 <-> f32 conversion with
 * round-to-nearest-even and correct NaN, infinity and subnormal handling.
 * Does not own tensors (tensor.h) or files (safetensors.h). */
#ifndef IT_DTYPE_H
#define IT_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum it_dtype {
    IT_DTYPE_F32 = 0,
    IT_DTYPE_F16,
    IT_DTYPE_BF16,
    IT_DTYPE_I32,
    IT_DTYPE_I64,
    IT_DTYPE_U8,
    IT_DTYPE_COUNT,
} it_dtype;

size_t it_dtype_size(it_dtype t);          /* bytes per element */
const char *it_dtype_name(it_dtype t);     /* "F32", "F16", "BF16", "I32", "I64", "U8" */
int it_dtype_parse(const char *name, it_dtype *out); /* safetensors names; 0 ok, -1 unknown */

float it_f16_to_f32(uint16_t h);
uint16_t it_f32_to_f16(float f);           /* round to nearest even; NaN stays NaN */
float it_bf16_to_f32(uint16_t h);
uint16_t it_f32_to_bf16(float f);          /* round to nearest even; NaN stays NaN */

/* Bulk conversions (parallel for large n). */
void it_f16_to_f32_n(float *dst, const uint16_t *src, size_t n);
void it_f32_to_f16_n(uint16_t *dst, const float *src, size_t n);
void it_bf16_to_f32_n(float *dst, const uint16_t *src, size_t n);
void it_f32_to_bf16_n(uint16_t *dst, const float *src, size_t n);

/* Converts n elements of any dtype to f32 (integers by value). */
void it_dtype_to_f32_n(float *dst, const void *src, it_dtype t, size_t n);

#endif
