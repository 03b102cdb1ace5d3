/* det_loss.c: box, class (focal) and pairwise losses with their backward
 * passes. Arithmetic in double inside one element so the finite-difference
 * checks are tight; the values handed back are float like every op. */
#include "toy/det_loss.h"

#include <math.h>
#include <string.h>

#include "tensor/autograd.h"
#include "tensor/ops_common.h"

/* ---------------------------------------------------------------- helpers */

static double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
static double sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x)); }

static void *ctx_copy(it_ctx *ctx, const void *src, size_t bytes)
{
    if (!bytes) return NULL;
    void *d = it_ctx_alloc(ctx, bytes);
    if (d) memcpy(d, src, bytes);
    return d;
}

/* Same formula as vision/owlvit.c's compute_box_bias (in float, as there). */
void it_detloss_box_bias(float *b, int gh, int gw)
{
    float sw = logf(1.0f / (float)gw + 1e-4f) - log1pf(-1.0f / (float)gw + 1e-4f);
    float sh = logf(1.0f / (float)gh + 1e-4f) - log1pf(-1.0f / (float)gh + 1e-4f);
    for (int y = 0; y < gh; y++)
        for (int x = 0; x < gw; x++) {
            float cx = (float)(x + 1) / (float)gw, cy = (float)(y + 1) / (float)gh;
            cx = cx > 1.0f ? 1.0f : cx;
            cy = cy > 1.0f ? 1.0f : cy;
            float *o = b + ((size_t)y * (size_t)gw + (size_t)x) * 4;
            o[0] = logf(cx + 1e-4f) - log1pf(-cx + 1e-4f);
            o[1] = logf(cy + 1e-4f) - log1pf(-cy + 1e-4f);
            o[2] = sw;
            o[3] = sh;
        }
}

float it_detloss_giou(const float a[4], const float b[4])
{
    float aa = (a[2] - a[0]) * (a[3] - a[1]), ab = (b[2] - b[0]) * (b[3] - b[1]);
    float w = fminf(a[2], b[2]) - fmaxf(a[0], b[0]), h = fminf(a[3], b[3]) - fmaxf(a[1], b[1]);
    float inter = (w > 0 ? w : 0) * (h > 0 ? h : 0), uni = aa + ab - inter;
    float cw = fmaxf(a[2], b[2]) - fminf(a[0], b[0]), ch = fmaxf(a[3], b[3]) - fminf(a[1], b[1]);
    float area = cw * ch;
    if (!(uni > 0) || !(area > 0)) return 0.0f;
    return inter / uni - (area - uni) / area;
}

/* ---------------------------------------------------------------- box loss */

/* Loss of one matched box and, when g is given, d loss / d raw (4). p: the
 * predicted (cx, cy, w, h) after the sigmoid; t: the target. */
static double box_term(const double p[4], const float t[4], double w_l1, double w_giou, double g[4])
{
    double l1 = 0, dp[4];
    for (int k = 0; k < 4; k++) {
        double d = p[k] - t[k];
        l1 += fabs(d);
        dp[k] = w_l1 * (d > 0 ? 1.0 : d < 0 ? -1.0 : 0.0);
    }
    double x0 = p[0] - 0.5 * p[2], y0 = p[1] - 0.5 * p[3], x1 = p[0] + 0.5 * p[2], y1 = p[1] + 0.5 * p[3];
    double gx0 = t[0] - 0.5 * t[2], gy0 = t[1] - 0.5 * t[3], gx1 = t[0] + 0.5 * t[2], gy1 = t[1] + 0.5 * t[3];
    double ap = (x1 - x0) * (y1 - y0), ag = (gx1 - gx0) * (gy1 - gy0);
    double iw = fmin(x1, gx1) - fmax(x0, gx0), ih = fmin(y1, gy1) - fmax(y0, gy0);
    int overlap = iw > 0 && ih > 0;
    double inter = overlap ? iw * ih : 0, uni = ap + ag - inter;
    double cw = fmax(x1, gx1) - fmin(x0, gx0), ch = fmax(y1, gy1) - fmin(y0, gy0), c = cw * ch;
    double giou = (uni > 0 && c > 0) ? inter / uni - (c - uni) / c : 0;
    if (g && uni > 0 && c > 0) {
        /* giou = I/U - 1 + U/C with U = Ap + Ag - I:
         * d giou = dI (1/U + I/U^2 - 1/C) + dAp (1/C - I/U^2) - dC U/C^2 */
        double kI = 1 / uni + inter / (uni * uni) - 1 / c, kA = 1 / c - inter / (uni * uni), kC = -uni / (c * c);
        double dI[4] = {0, 0, 0, 0}; /* d/d(x0, y0, x1, y1) */
        if (overlap) {
            dI[0] = x0 > gx0 ? -ih : 0;
            dI[2] = x1 < gx1 ? ih : 0;
            dI[1] = y0 > gy0 ? -iw : 0;
            dI[3] = y1 < gy1 ? iw : 0;
        }
        double dA[4] = {-(y1 - y0), -(x1 - x0), y1 - y0, x1 - x0};
        double dC[4] = {x0 < gx0 ? -ch : 0, y0 < gy0 ? -cw : 0, x1 > gx1 ? ch : 0, y1 > gy1 ? cw : 0};
        double dc[4]; /* d giou / d corner */
        for (int k = 0; k < 4; k++) dc[k] = kI * dI[k] + kA * dA[k] + kC * dC[k];
        /* corners from (cx, cy, w, h); the loss is -w_giou * giou */
        dp[0] -= w_giou * (dc[0] + dc[2]);
        dp[1] -= w_giou * (dc[1] + dc[3]);
        dp[2] -= w_giou * 0.5 * (dc[2] - dc[0]);
        dp[3] -= w_giou * 0.5 * (dc[3] - dc[1]);
    }
    if (g)
        for (int k = 0; k < 4; k++) g[k] = dp[k] * p[k] * (1 - p[k]); /* through the sigmoid */
    return w_l1 * l1 + w_giou * (1 - giou);
}

typedef struct box_saved {
    it_detloss_box_args a;
} box_saved;

static void pred_of(const float *raw, const float *bias, double p[4])
{
    for (int k = 0; k < 4; k++) p[k] = sigmoid((double)raw[k] + (double)bias[k]);
}

static void box_backward(it_ctx *ctx, it_node *n)
{
    float *gx = it_autograd_grad(ctx, n->in[0]);
    if (!gx) return;
    const box_saved *s = n->saved;
    const float *raw = n->in[0]->data;
    double up = (double)n->out->grad[0] / s->a.norm;
    for (int m = 0; m < s->a.n_match; m++) {
        int64_t r = s->a.row[m];
        double p[4], g[4];
        pred_of(raw + r * 4, s->a.bias + (r % s->a.n_patches) * 4, p);
        box_term(p, s->a.gt + (size_t)m * 4, s->a.w_l1, s->a.w_giou, g);
        for (int k = 0; k < 4; k++) gx[r * 4 + k] += (float)(up * g[k]);
    }
}

it_tensor *it_detloss_box(it_ctx *ctx, it_tensor *box_raw, const it_detloss_box_args *a)
{
    if (it_ops_skip(ctx, 1, &box_raw)) return NULL;
    if (!it_ops_need_f32(ctx, "detloss_box", box_raw)) return NULL;
    int64_t rows = box_raw->n / 4;
    if (box_raw->ndim < 1 || box_raw->shape[box_raw->ndim - 1] != 4 || a->n_patches < 1 || rows % a->n_patches ||
        a->n_match < 0 || !(a->norm > 0))
        return it_ops_shape_error(ctx, "detloss_box", box_raw, "must be (images * n_patches, 4), norm > 0");
    for (int m = 0; m < a->n_match; m++)
        if (a->row[m] < 0 || a->row[m] >= rows)
            return it_ops_shape_error(ctx, "detloss_box", box_raw, "a matched row is out of range");
    it_tensor *y = it_ops_out(ctx, 0, NULL);
    if (!y) return NULL;
    const float *raw = box_raw->data;
    double sum = 0;
    for (int m = 0; m < a->n_match; m++) {
        int64_t r = a->row[m];
        double p[4];
        pred_of(raw + r * 4, a->bias + (r % a->n_patches) * 4, p);
        sum += box_term(p, a->gt + (size_t)m * 4, a->w_l1, a->w_giou, NULL);
    }
    it_f32(y)[0] = (float)(sum / a->norm);
    if (!it_autograd_wants(ctx, 1, &box_raw)) return y;
    box_saved *s = it_ctx_alloc(ctx, sizeof *s);
    if (!s) return NULL;
    s->a = *a;
    s->a.row = ctx_copy(ctx, a->row, (size_t)a->n_match * sizeof(int32_t));
    s->a.gt = ctx_copy(ctx, a->gt, (size_t)a->n_match * 4 * sizeof(float));
    s->a.bias = ctx_copy(ctx, a->bias, (size_t)a->n_patches * 4 * sizeof(float));
    if (ctx->failed) return NULL;
    it_node *n = it_autograd_record(ctx, y, "detloss_box", box_backward, 1, &box_raw);
    if (n) n->saved = s;
    return y;
}

/* ---------------------------------------------------------------- class loss */

/* Focal loss of one logit and its derivative (RetinaNet / torchvision
 * sigmoid_focal_loss): ce * (1 - p_t)^gamma * alpha_t. */
static double focal(double x, int t, double alpha, double gamma, double *dx)
{
    double p = sigmoid(x);
    if (t) {
        double lp = -softplus(-x), q = 1 - p, a = alpha < 0 ? 1 : alpha;
        double f = pow(q, gamma);
        if (dx) *dx = a * f * (gamma * p * lp - q);
        return -a * f * lp;
    }
    double lq = -softplus(x), a = alpha < 0 ? 1 : 1 - alpha;
    double f = pow(p, gamma);
    if (dx) *dx = a * f * (p - gamma * (1 - p) * lq);
    return -a * f * lq;
}

typedef struct class_saved {
    it_detloss_class_args a;
    int64_t R, D, Q;
    double *en;    /* (R, D) normalised embeddings */
    double *rn;    /* (R) norms */
    double *qn;    /* (Q, D) normalised queries */
    double *tn;    /* (T) norms of the text queries */
    double *cosv;  /* (R, Q) */
} class_saved;

static void norm_rows(double *out, double *norms, const float *in, int64_t rows, int64_t d)
{
    for (int64_t r = 0; r < rows; r++) {
        double ss = 0;
        for (int64_t k = 0; k < d; k++) ss += (double)in[r * d + k] * in[r * d + k];
        double nr = sqrt(ss), inv = 1.0 / (nr + 1e-6);
        if (norms) norms[r] = nr;
        for (int64_t k = 0; k < d; k++) out[r * d + k] = in[r * d + k] * inv;
    }
}

static double scale_of(double s) { return (s > 0 ? s : expm1(s)) + 1.0; }

/* Forward pieces shared by both passes; fills s (allocated in ctx). */
static int class_prepare(it_ctx *ctx, class_saved *s, const float *emb)
{
    int64_t R = s->R, D = s->D, Q = s->Q, T = s->a.n_text;
    s->en = it_ctx_alloc(ctx, (size_t)(R * D) * sizeof(double));
    s->rn = it_ctx_alloc(ctx, (size_t)R * sizeof(double));
    s->qn = it_ctx_alloc(ctx, (size_t)((Q ? Q : 1) * D) * sizeof(double));
    s->cosv = it_ctx_alloc(ctx, (size_t)((R * Q) ? R * Q : 1) * sizeof(double));
    s->tn = it_ctx_alloc(ctx, (size_t)(T ? T : 1) * sizeof(double));
    if (!s->en || !s->rn || !s->qn || !s->cosv || !s->tn) return 0;
    norm_rows(s->en, s->rn, emb, R, D);
    if (T) norm_rows(s->qn, s->tn, s->a.text_q, T, D);
    for (int64_t k = 0; k < s->a.n_img; k++)
        memcpy(s->qn + (T + k) * D, s->en + (int64_t)s->a.img_row[k] * D, (size_t)D * sizeof(double));
    for (int64_t r = 0; r < R; r++)
        for (int64_t q = 0; q < Q; q++) {
            double dot = 0;
            for (int64_t k = 0; k < D; k++) dot += s->en[r * D + k] * s->qn[q * D + k];
            s->cosv[r * Q + q] = dot;
        }
    return 1;
}

static void class_backward(it_ctx *ctx, it_node *n)
{
    const class_saved *s = n->saved;
    int64_t R = s->R, D = s->D, Q = s->Q, T = s->a.n_text;
    float *ge = it_autograd_grad(ctx, n->in[0]);
    float *gsh = it_autograd_grad(ctx, n->in[1]);
    float *gsc = it_autograd_grad(ctx, n->in[2]);
    const float *emb = n->in[0]->data, *sh = n->in[1]->data, *sr = n->in[2]->data;
    double up = (double)n->out->grad[0] / s->a.norm;
    float *gq = n->in[3] ? it_autograd_grad(ctx, n->in[3]) : NULL;
    double *den = it_ctx_calloc(ctx, (size_t)(R * D) * sizeof(double)); /* d loss / d normalised emb */
    double *dqn = gq ? it_ctx_calloc(ctx, (size_t)((T ? T : 1) * D) * sizeof(double)) : NULL;
    if (!den || (gq && !dqn)) return;
    for (int64_t r = 0; r < R; r++) {
        double sc = scale_of(sr[r]), dsh = 0, dsc = 0;
        for (int64_t q = 0; q < Q; q++) {
            if (s->a.valid && !s->a.valid[r * Q + q]) continue;
            double c = s->cosv[r * Q + q], dx;
            focal((c + sh[r]) * sc, s->a.target[r * Q + q], s->a.alpha, s->a.gamma, &dx);
            dx *= up;
            dsh += dx * sc;
            dsc += dx * (c + sh[r]);
            double gc = dx * sc; /* d / d cos */
            for (int64_t k = 0; k < D; k++) den[r * D + k] += gc * s->qn[q * D + k];
            if (q < T && dqn)
                for (int64_t k = 0; k < D; k++) dqn[q * D + k] += gc * s->en[r * D + k];
            if (q >= T) {
                int64_t src = s->a.img_row[q - T];
                for (int64_t k = 0; k < D; k++) den[src * D + k] += gc * s->en[r * D + k];
            }
        }
        if (gsh) gsh[r] += (float)dsh;
        if (gsc) gsc[r] += (float)(dsc * (sr[r] > 0 ? 1.0 : exp((double)sr[r])));
    }
    const float *tq = n->in[3] ? n->in[3]->data : NULL;
    for (int64_t q = 0; gq && q < T; q++) { /* the same normalisation's backward, for text queries */
        double nr = s->tn[q], inv = 1.0 / (nr + 1e-6), dot = 0;
        for (int64_t k = 0; k < D; k++) dot += (double)tq[q * D + k] * dqn[q * D + k];
        double k2 = nr > 0 ? dot / (nr * (nr + 1e-6) * (nr + 1e-6)) : 0;
        for (int64_t k = 0; k < D; k++) gq[q * D + k] += (float)(dqn[q * D + k] * inv - tq[q * D + k] * k2);
    }
    if (!ge) return;
    /* e_hat = e / (|e| + eps): de = den / (|e| + eps) - e (e . den) / (|e| (|e| + eps)^2) */
    for (int64_t r = 0; r < R; r++) {
        double nr = s->rn[r], inv = 1.0 / (nr + 1e-6), dot = 0;
        for (int64_t k = 0; k < D; k++) dot += (double)emb[r * D + k] * den[r * D + k];
        double k2 = nr > 0 ? dot / (nr * (nr + 1e-6) * (nr + 1e-6)) : 0;
        for (int64_t k = 0; k < D; k++) ge[r * D + k] += (float)(den[r * D + k] * inv - emb[r * D + k] * k2);
    }
}

it_tensor *it_detloss_class(it_ctx *ctx, it_tensor *class_emb, it_tensor *shift, it_tensor *scale_raw,
                            const it_detloss_class_args *a, float *logits)
{
    return it_detloss_class_q(ctx, class_emb, shift, scale_raw, NULL, a, logits);
}

it_tensor *it_detloss_class_q(it_ctx *ctx, it_tensor *class_emb, it_tensor *shift, it_tensor *scale_raw,
                              it_tensor *text_q, const it_detloss_class_args *a, float *logits)
{
    it_tensor *in[4] = {class_emb, shift, scale_raw, text_q};
    if (it_ops_skip(ctx, 3, in)) return NULL;
    for (int i = 0; i < (text_q ? 4 : 3); i++)
        if (!it_ops_need_f32(ctx, "detloss_class", in[i])) return NULL;
    if (class_emb->ndim < 1) return it_ops_shape_error(ctx, "detloss_class", class_emb, "needs (..., D)");
    int64_t D = class_emb->shape[class_emb->ndim - 1], R = D ? class_emb->n / D : 0, Q = a->n_text + a->n_img;
    if (!D || shift->n != R || scale_raw->n != R || !(a->norm > 0) || a->n_text < 0 || a->n_img < 0)
        return it_ops_shape_error(ctx, "detloss_class", class_emb, "rows must match shift and scale; norm > 0");
    for (int k = 0; k < a->n_img; k++)
        if (a->img_row[k] < 0 || a->img_row[k] >= R)
            return it_ops_shape_error(ctx, "detloss_class", class_emb, "an image query row is out of range");
    if (text_q && (text_q->n != (int64_t)a->n_text * D))
        return it_ops_shape_error(ctx, "detloss_class", text_q, "text queries must be (n_text, D)");
    class_saved *s = it_ctx_calloc(ctx, sizeof *s);
    it_tensor *y = it_ops_out(ctx, 0, NULL);
    if (!s || !y) return NULL;
    s->a = *a;
    if (text_q) s->a.text_q = text_q->data;
    s->R = R;
    s->D = D;
    s->Q = Q;
    if (!class_prepare(ctx, s, class_emb->data)) return NULL;
    const float *sh = shift->data, *sr = scale_raw->data;
    double sum = 0;
    for (int64_t r = 0; r < R; r++) {
        double sc = scale_of(sr[r]);
        for (int64_t q = 0; q < Q; q++) {
            double x = (s->cosv[r * Q + q] + sh[r]) * sc;
            if (logits) logits[r * Q + q] = (float)x;
            if (a->valid && !a->valid[r * Q + q]) continue;
            sum += focal(x, a->target[r * Q + q], a->alpha, a->gamma, NULL);
        }
    }
    it_f32(y)[0] = (float)(sum / a->norm);
    if (!it_autograd_wants(ctx, 4, in)) return y;
    s->a.text_q = NULL; /* folded into qn */
    s->a.img_row = ctx_copy(ctx, a->img_row, (size_t)a->n_img * sizeof(int32_t));
    s->a.target = ctx_copy(ctx, a->target, (size_t)(R * Q));
    s->a.valid = a->valid ? ctx_copy(ctx, a->valid, (size_t)(R * Q)) : NULL;
    if (ctx->failed) return NULL;
    it_node *n = it_autograd_record(ctx, y, "detloss_class", class_backward, 4, in);
    if (n) n->saved = s;
    return y;
}

/* ---------------------------------------------------------------- pairwise */

static void pair_backward(it_ctx *ctx, it_node *n)
{
    float *gx = it_autograd_grad(ctx, n->in[0]);
    if (!gx) return;
    int64_t P = n->iarg[0];
    const float *s = n->in[0]->data;
    double up = (double)n->out->grad[0] / (double)P;
    for (int64_t p = 0; p < P; p++) {
        double g = up * sigmoid((double)s[P + p] - (double)s[p]);
        gx[p] -= (float)g;
        gx[P + p] += (float)g;
    }
}

it_tensor *it_detloss_pairwise(it_ctx *ctx, it_tensor *scores, int n_pairs)
{
    if (it_ops_skip(ctx, 1, &scores)) return NULL;
    if (!it_ops_need_f32(ctx, "detloss_pairwise", scores)) return NULL;
    if (n_pairs < 1 || scores->n != 2 * (int64_t)n_pairs)
        return it_ops_shape_error(ctx, "detloss_pairwise", scores, "must hold 2 * n_pairs scores");
    it_tensor *y = it_ops_out(ctx, 0, NULL);
    if (!y) return NULL;
    const float *s = scores->data;
    double sum = 0;
    for (int p = 0; p < n_pairs; p++) sum += softplus((double)s[n_pairs + p] - (double)s[p]);
    it_f32(y)[0] = (float)(sum / n_pairs);
    it_node *n = it_autograd_record(ctx, y, "detloss_pairwise", pair_backward, 1, &scores);
    if (n) n->iarg[0] = n_pairs;
    return y;
}
