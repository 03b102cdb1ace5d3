/* lora_file.h: LoRA files other tools read and write.
 *
 * Owns: saving in kohya's format (what A1111/ComfyUI/diffusers read):
 * "lora_unet_<path with _>.lora_down.weight" (r, in) or (r, in, kh, kw),
 * ".lora_up.weight" (out, r) or (out, r, 1, 1), ".alpha" (a 0-dim tensor),
 * "lora_te_..." for the text encoder, with kohya's ss_* metadata; loading
 * kohya files and diffusers/PEFT files ("unet.<module>.lora_A.weight",
 * ".lora_B.weight", "text_encoder.<module>...", optional ".alpha"; without
 * alpha the scale is 1, as PEFT's default lora_alpha = r) and binding them
 * to a model's modules. Does not own the modules (lora.h). */
#ifndef IT_LORA_FILE_H
#define IT_LORA_FILE_H

#include "base/mem.h"
#include "tensor/dtype.h"
#include "tensor/safetensors.h"
#include "train/lora.h"

/* Extra metadata pairs ("ss_base_model_version", "sd_v1", ...). */
typedef struct it_lora_meta {
    const char *key, *value;
} it_lora_meta;

/* Writes l atomically in kohya's format. dtype: IT_DTYPE_F32 or F16/BF16
 * (weights rounded to it; alpha stored in the same dtype, as kohya does).
 * Adds ss_network_module, ss_network_dim, ss_network_alpha (and
 * ss_network_args for LoCon) and the given pairs. */
it_status it_lora_save(it_err *err, const it_lora *l, const char *path, it_dtype dtype,
                       const it_lora_meta *meta, size_t n_meta);

/* The same file in memory (tests, fuzzing). */
it_status it_lora_save_buf(it_err *err, const it_lora *l, it_buf *out, it_dtype dtype,
                           const it_lora_meta *meta, size_t n_meta);

/* Loads a kohya or PEFT LoRA file and binds its modules to unet_ps and
 * text_ps (either may be NULL: modules of that component then stay
 * unbound, for inspection; with both NULL nothing is bound). A module the
 * model lacks or whose shape differs is an error naming the file and key.
 * Not attached; multiplier 1. trainable: allocate gradients (resume). */
it_status it_lora_load(it_err *err, it_lora *l, const char *path, const it_params *unet_ps,
                       const it_params *text_ps, int trainable);

/* it_lora_load from an open (or in-memory, it_safetensors_parse) file. */
it_status it_lora_load_st(it_err *err, it_lora *l, const it_safetensors *f, const it_params *unet_ps,
                          const it_params *text_ps, int trainable);

/* Copies the values of src into dst (same modules in the same order):
 * for resuming training from a checkpoint file. */
it_status it_lora_copy_values(it_err *err, it_lora *dst, const it_lora *src);

/* "FILE" or "FILE:SCALE" (generate --lora): loads FILE onto the model,
 * sets the multiplier (default 1) and attaches it. Errors name the spec. */
it_status it_lora_apply_spec(it_err *err, it_lora *l, const char *spec, const it_params *unet_ps,
                             const it_params *text_ps);

#endif
