/* train_step.c: noise, target, weighted MSE and backward of one batch. */
#include "train/train_step.h"

#include <math.h>
#include <string.h>

#include "base/rng.h"
#include "tensor/autograd.h"
#include "tensor/ops_eltwise.h"
#include "tensor/ops_loss.h"

/* Per-item loss weight of min-SNR-gamma (Hang et al. 2023, diffusers'
 * train_text_to_image: mse_loss_weights). */
static float snr_weight(const it_schedule *s, int t, float gamma, it_pred_type p)
{
    if (gamma <= 0) return 1.0f;
    double snr = it_schedule_snr(s, t);
    double w = (snr < gamma ? snr : gamma);
    if (p == IT_PREDICT_V) return (float)(w / (snr + 1.0));
    if (p == IT_PREDICT_SAMPLE) return (float)(w); /* x0 target: weight min(snr, gamma) */
    return (float)(w / snr);
}

it_status it_train_step_loss(it_err *err, it_ctx *ctx, const it_unet *unet, const it_schedule *s,
                             const it_train_batch *b, const it_train_loss_opts *o, double *loss)
{
    int B = b->batch;
    size_t item = (size_t)(b->c * b->h * b->w);
    it_tensor *noisy = it_tensor_new(ctx, IT_DTYPE_F32, IT_SHAPE(B, b->c, b->h, b->w));
    it_tensor *target = it_tensor_new(ctx, IT_DTYPE_F32, IT_SHAPE(B, b->c, b->h, b->w));
    it_tensor *tt = it_tensor_new(ctx, IT_DTYPE_F32, IT_SHAPE(B));
    it_tensor *text = b->text_states ? b->text_states : it_tensor_from(ctx, b->text, IT_SHAPE(B, b->t_len, b->t_dim));
    if (it_ctx_status(ctx, err)) return err ? err->code : IT_ERR_NOMEM;
    IT_TRY(it_schedule_add_noise(err, s, it_f32(noisy), b->latents, b->noise, b->timesteps, B, item));
    it_schedule tmp = *s;
    tmp.cfg.prediction = o->prediction;
    IT_TRY(it_schedule_target(err, &tmp, it_f32(target), b->latents, b->noise, b->timesteps, B, item));
    for (int i = 0; i < B; i++) it_f32(tt)[i] = (float)b->timesteps[i];
    it_tensor *weight = NULL;
    if (o->min_snr_gamma > 0 || b->mask) {
        weight = it_tensor_new(ctx, IT_DTYPE_F32, IT_SHAPE(B, b->c, b->h, b->w));
        if (!weight) return it_ctx_status(ctx, err);
        for (int i = 0; i < B; i++) {
            float wi = snr_weight(s, b->timesteps[i], o->min_snr_gamma, o->prediction);
            for (size_t j = 0; j < item; j++) {
                size_t hw = (size_t)(b->h * b->w);
                float m = b->mask ? b->mask[(size_t)i * hw + j % hw] : 1.0f;
                it_f32(weight)[(size_t)i * item + j] = wi * m;
            }
        }
    }
    it_tensor *pred = it_unet_forward(ctx, unet, noisy, tt, text);
    it_tensor *l = it_op_mse(ctx, pred, target, weight);
    if (!l) return it_ctx_status(ctx, err);
    *loss = it_f32(l)[0];
    if (o->loss_scale != 1.0f) l = it_op_scale(ctx, l, o->loss_scale, 0.0f);
    return it_autograd_backward(err, ctx, l);
}

it_status it_train_text_states(it_err *err, it_ctx *ctx, it_clip_text *te, const int32_t *ids, int B,
                               int64_t T, int train, it_tensor **out)
{
    *out = NULL;
    it_tensor *idt = it_tensor_new(ctx, IT_DTYPE_I32, IT_SHAPE(B, T));
    if (!idt) return it_ctx_status(ctx, err);
    memcpy(idt->data, ids, (size_t)B * (size_t)T * sizeof(int32_t));
    int was = it_autograd_set_enabled(ctx, train && ctx->grad_enabled);
    it_clip_text_out to;
    it_status s = it_clip_text_forward(err, ctx, te, idt, 0, 0, &to);
    it_autograd_set_enabled(ctx, was);
    if (!s) *out = to.hidden;
    return s;
}

void it_train_draw_noise(uint64_t seed, int64_t step, int micro, int batch, int64_t c, int64_t h,
                         int64_t w, float noise_offset, int t_min, int t_max, float *noise,
                         int *timesteps)
{
    /* One stream per (step, micro): the counter offset is 2^32 * the pair's
     * index, far beyond what one micro-batch draws. */
    it_rng r;
    it_rng_init(&r, seed ^ 0x6E6F697365ull);
    r.offset = ((uint64_t)step * 64u + (uint64_t)micro) << 32;
    size_t item = (size_t)(c * h * w);
    it_rng_normal(&r, noise, (size_t)batch * item, 0.0f, 1.0f);
    for (int i = 0; i < batch; i++)
        timesteps[i] = t_min + (int)it_rng_below(&r, (uint64_t)(t_max - t_min));
    if (noise_offset != 0) {
        for (int i = 0; i < batch; i++)
            for (int64_t ch = 0; ch < c; ch++) {
                float off;
                it_rng_normal(&r, &off, 1, 0.0f, 1.0f);
                float *p = noise + (size_t)i * item + (size_t)(ch * h * w);
                for (int64_t j = 0; j < h * w; j++) p[j] += noise_offset * off;
            }
    }
}
