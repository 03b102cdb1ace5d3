/* test_optim.c: optimisers, clipping, schedules and EMA against PyTorch /
 * diffusers fixtures; state save/load; argument and out-of-memory paths. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/mem.h"
#include "kernels_fixture.h"
#include "tensor/optim.h"
#include "test.h"

enum { NP = 4, MAXN = 64 };

/* Four parameters like the fixtures': lengths 37, 5, 64, 3, the last frozen. */
typedef struct pset {
    float data[NP][MAXN], grad[NP][MAXN];
    it_optim_param p[NP];
} pset;

static void pset_init(pset *s, uint32_t seed)
{
    static const size_t sizes[NP] = {37, 5, 64, 3};
    static const char *names[NP] = {"down.0.weight", "down.0.bias", "attn.to_q.lora_A", "frozen.weight"};
    for (int j = 0; j < NP; j++) {
        kf_fill(s->data[j], sizes[j], seed * 100 + (uint32_t)j, 0.8f);
        memset(s->grad[j], 0, sizeof s->grad[j]);
        s->p[j] = (it_optim_param){names[j], s->data[j], j < 3 ? s->grad[j] : NULL, sizes[j], j == 3};
    }
}

static void pset_grads(pset *s, uint32_t seed, int step)
{
    for (int j = 0; j < 3; j++) kf_fill(s->grad[j], s->p[j].n, seed * 1000 + (uint32_t)step * 10 + (uint32_t)j, 1.0f);
}

/* Error of the concatenated parameters against ref, relative to each
 * tensor's largest magnitude (elements that pass near zero make a plain
 * element-wise relative error meaningless: torch's float norm and fused
 * kernels differ from ours by an ulp of the larger intermediates). */
static double pset_err(const pset *s, const float *ref)
{
    double e = 0;
    size_t off = 0;
    for (int j = 0; j < NP; j++) {
        e = fmax(e, kf_norm_err(s->data[j], ref + off, s->p[j].n, 1e-3));
        off += s->p[j].n;
    }
    return e;
}

static it_lr_schedule sched_of(it_test_ctx *t, const char *name, int64_t warmup, int64_t total)
{
    it_lr_kind k = IT_LR_CONSTANT;
    it_err e;
    IT_CHECK_OK(it_lr_kind_parse(&e, name, &k), &e);
    return it_lr_schedule_make(k, warmup, total);
}

static it_ema_config ema_of(json_t *c, const char *mode)
{
    it_ema_config e = it_ema_defaults();
    e.decay = kf_num(c, "decay");
    e.min_decay = kf_num(c, "min_decay");
    e.update_after_step = kf_int(c, "update_after_step");
    e.use_warmup = json_is_true(json_object_get(c, "use_ema_warmup"));
    e.inv_gamma = kf_num(c, "inv_gamma");
    e.power = kf_num(c, "power");
    e.plain = strcmp(mode, "plain") == 0;
    return e;
}

IT_TEST(optim_torch_parity)
{
    kf_fixture f;
    if (!kf_load(t, &f, "optim")) return;
    size_t ci;
    json_t *c;
    json_array_foreach(json_object_get(f.root, "cases"), ci, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        const char *kind = json_string_value(json_object_get(c, "kind"));
        uint32_t seed = (uint32_t)kf_int(c, "seed");
        int steps = kf_int(c, "steps");
        double clip = kf_num(c, "clip"), base = kf_num(c, "lr");
        it_optim_config cfg = strcmp(kind, "adamw") == 0 ? it_optim_adamw_defaults(base) : it_optim_sgd_defaults(base);
        cfg.weight_decay = kf_num(c, "weight_decay");
        cfg.beta1 = kf_num(c, "beta1"), cfg.beta2 = kf_num(c, "beta2"), cfg.eps = kf_num(c, "eps");
        cfg.momentum = kf_num(c, "momentum"), cfg.dampening = kf_num(c, "dampening");
        cfg.nesterov = kf_int(c, "nesterov");
        pset s;
        pset_init(&s, seed);
        it_optim o;
        it_ema ema;
        it_err e;
        IT_REQUIRE_OK(it_optim_init(&e, &o, &cfg, s.p, NP), &e);
        const char *ema_mode = json_string_value(json_object_get(c, "ema"));
        int use_ema = strcmp(ema_mode, "none") != 0;
        it_ema_config ecfg = use_ema ? ema_of(json_object_get(c, "ema_cfg"), ema_mode) : it_ema_defaults();
        if (use_ema) IT_REQUIRE_OK(it_ema_init(&e, &ema, &ecfg, s.p, NP), &e);
        it_lr_schedule sch = sched_of(t, json_string_value(json_object_get(c, "lr_schedule")), 4, steps);
        const float *traj = kf_array(t, &f, c, "params", (size_t)steps * (37 + 5 + 64 + 3));
        double err_p = 0, err_norm = 0, err_lr = 0;
        for (int step = 1; traj && step <= steps; step++) {
            pset_grads(&s, seed, step);
            if (clip > 0) {
                double n = it_optim_clip_grad_norm(&o, clip);
                double ref = json_number_value(json_array_get(json_object_get(c, "norms"), (size_t)step - 1));
                err_norm = fmax(err_norm, fabs(n - ref) / ref);
            }
            double lr = it_lr_schedule_lr(&sch, base, step - 1);
            double lref = json_number_value(json_array_get(json_object_get(c, "lrs"), (size_t)step - 1));
            err_lr = fmax(err_lr, fabs(lr - lref) / fmax(lref, 1e-30));
            it_optim_step(&o, lr);
            if (use_ema) it_ema_update(&ema);
            err_p = fmax(err_p, pset_err(&s, traj + (size_t)(step - 1) * 109));
        }
        double err_ema = 0, err_decay = 0;
        if (use_ema) {
            const float *ref = kf_array(t, &f, c, "ema", 109);
            size_t off = 0;
            for (int j = 0; ref && j < NP; j++, off += s.p[j - 1].n)
                err_ema = fmax(err_ema, kf_norm_err(ema.shadow[j], ref + off, s.p[j].n, 1e-3));
            json_t *dec = json_object_get(c, "ema_decays");
            for (size_t n = 0; n < json_array_size(dec); n++)
                err_decay = fmax(err_decay, fabs(it_ema_decay(&ecfg, (int64_t)n + 1) - json_number_value(json_array_get(dec, n))));
            it_ema_free(&ema);
        }
        printf("    %-20s params %.1e norm %.1e lr %.1e ema %.1e decay %.1e\n", name, err_p, err_norm, err_lr,
               err_ema, err_decay);
        IT_CHECK(err_p <= 1e-6);
        IT_CHECK(err_norm <= 1e-6);
        IT_CHECK(err_lr <= 1e-12);
        IT_CHECK(err_ema <= 1e-6);
        IT_CHECK(err_decay <= 1e-12);
        it_optim_free(&o);
    }
    kf_free(&f);
}

IT_TEST(optim_schedules_match_diffusers)
{
    kf_fixture f;
    if (!kf_load(t, &f, "optim")) return;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(f.root, "schedules"), i, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        it_lr_schedule s = sched_of(t, name, kf_int(c, "warmup"), kf_int(c, "total"));
        if (kf_num(c, "num_cycles") > 0) s.num_cycles = kf_num(c, "num_cycles");
        if (kf_num(c, "power") > 0) s.power = kf_num(c, "power");
        double base = kf_num(c, "base_lr"), worst = 0;
        json_t *lrs = json_object_get(c, "lrs");
        for (size_t k = 0; k < json_array_size(lrs); k++) {
            double ref = json_number_value(json_array_get(lrs, k));
            worst = fmax(worst, fabs(it_lr_schedule_lr(&s, base, (int64_t)k) - ref) / base);
        }
        printf("    %-22s %zu steps, max error %.1e x base lr\n", name, json_array_size(lrs), worst);
        IT_CHECK(worst < 1e-12);
        IT_CHECK_STR(it_lr_kind_name(s.kind), name);
    }
    kf_free(&f);
    it_err e;
    it_lr_kind k;
    IT_CHECK_INT(it_lr_kind_parse(&e, "cosine_restarts", &k), IT_ERR_ARG);
    IT_CHECK_CONTAINS(e.msg, "unknown lr schedule 'cosine_restarts'");
}

/* 10 steps in one go equal 5 steps, save, load into a fresh optimiser,
 * 5 more steps: bit for bit, for AdamW, SGD with momentum and the EMA. */
IT_TEST(optim_state_save_load_resumes_exactly)
{
    for (int kind = 0; kind < 2; kind++) {
        it_optim_config cfg = kind == 0 ? it_optim_adamw_defaults(1e-2) : it_optim_sgd_defaults(0.1);
        if (kind == 1) cfg.momentum = 0.9;
        it_ema_config ec = it_ema_defaults();
        ec.decay = 0.95;
        pset a, b;
        pset_init(&a, 7);
        pset_init(&b, 7);
        it_optim oa, ob;
        it_ema ea, eb;
        it_err e;
        IT_REQUIRE_OK(it_optim_init(&e, &oa, &cfg, a.p, NP), &e);
        IT_REQUIRE_OK(it_ema_init(&e, &ea, &ec, a.p, NP), &e);
        for (int step = 1; step <= 10; step++) {
            pset_grads(&a, 7, step);
            it_optim_step(&oa, cfg.lr);
            it_ema_update(&ea);
        }
        it_optim o1;
        it_ema e1;
        IT_REQUIRE_OK(it_optim_init(&e, &o1, &cfg, b.p, NP), &e);
        IT_REQUIRE_OK(it_ema_init(&e, &e1, &ec, b.p, NP), &e);
        for (int step = 1; step <= 5; step++) {
            pset_grads(&b, 7, step);
            it_optim_step(&o1, cfg.lr);
            it_ema_update(&e1);
        }
        const char *opath = it_test_tmp(t, "optim.safetensors");
        IT_REQUIRE_OK(it_optim_save(&e, &o1, opath), &e);
        char op[512];
        snprintf(op, sizeof op, "%s", opath);
        const char *epath = it_test_tmp(t, "ema.safetensors");
        IT_REQUIRE_OK(it_ema_save(&e, &e1, epath), &e);
        it_optim_free(&o1);
        it_ema_free(&e1);
        IT_REQUIRE_OK(it_optim_init(&e, &ob, &cfg, b.p, NP), &e);
        IT_REQUIRE_OK(it_ema_init(&e, &eb, &ec, b.p, NP), &e);
        IT_REQUIRE_OK(it_optim_load(&e, &ob, op), &e);
        IT_REQUIRE_OK(it_ema_load(&e, &eb, epath), &e);
        IT_CHECK_INT(ob.step, 5);
        IT_CHECK_INT(eb.optimization_step, 5);
        for (int step = 6; step <= 10; step++) {
            pset_grads(&b, 7, step);
            it_optim_step(&ob, cfg.lr);
            it_ema_update(&eb);
        }
        for (int j = 0; j < NP; j++) {
            IT_CHECK(memcmp(a.data[j], b.data[j], a.p[j].n * sizeof(float)) == 0);
            IT_CHECK(memcmp(ea.shadow[j], eb.shadow[j], a.p[j].n * sizeof(float)) == 0);
        }
        /* the other kind's file is refused, state untouched */
        it_optim_config other = kind == 0 ? it_optim_sgd_defaults(0.1) : it_optim_adamw_defaults(0.1);
        other.momentum = 0.5;
        it_optim oc;
        IT_REQUIRE_OK(it_optim_init(&e, &oc, &other, b.p, NP), &e);
        IT_CHECK_INT(it_optim_load(&e, &oc, op), IT_ERR_FORMAT);
        IT_CHECK_CONTAINS(e.msg, kind == 0 ? "metadata 'optimizer' is 'adamw', expected 'sgd'"
                                           : "metadata 'optimizer' is 'sgd', expected 'adamw'");
        IT_CHECK_INT(oc.step, 0);
        IT_CHECK_INT(it_optim_load(&e, &oc, epath), IT_ERR_FORMAT);
        IT_CHECK_CONTAINS(e.msg, "metadata 'format' is 'intenttuner-ema-1', expected 'intenttuner-optim-1'");
        it_optim_free(&oc);
        /* an EMA file loads as plain weights: the keys are the parameter names */
        it_ema_copy_to(&eb);
        IT_CHECK(memcmp(b.data[0], eb.shadow[0], b.p[0].n * sizeof(float)) == 0);
        it_optim_free(&oa);
        it_optim_free(&ob);
        it_ema_free(&ea);
        it_ema_free(&eb);
    }
}

IT_TEST(optim_load_rejects_mismatched_state)
{
    pset s;
    pset_init(&s, 3);
    it_optim o;
    it_err e;
    it_optim_config cfg = it_optim_adamw_defaults(1e-3);
    IT_REQUIRE_OK(it_optim_init(&e, &o, &cfg, s.p, NP), &e);
    pset_grads(&s, 3, 1);
    it_optim_step(&o, 1e-3);
    char path[512];
    snprintf(path, sizeof path, "%s", it_test_tmp(t, "st.safetensors"));
    IT_REQUIRE_OK(it_optim_save(&e, &o, path), &e);
    /* a parameter list where one tensor is longer, one is renamed */
    pset s2 = s;
    for (int j = 0; j < NP; j++) s2.p[j].data = s2.data[j], s2.p[j].grad = j < 3 ? s2.grad[j] : NULL;
    s2.p[1].n = 6;
    it_optim o2;
    IT_REQUIRE_OK(it_optim_init(&e, &o2, &cfg, s2.p, NP), &e);
    IT_CHECK_INT(it_optim_load(&e, &o2, path), IT_ERR_FORMAT);
    IT_CHECK_CONTAINS(e.msg, "tensor 'down.0.bias.exp_avg' has 5 elements, parameter has 6");
    it_optim_free(&o2);
    s2.p[1].n = 5;
    s2.p[2].name = "attn.to_k.lora_A";
    IT_REQUIRE_OK(it_optim_init(&e, &o2, &cfg, s2.p, NP), &e);
    IT_CHECK_INT(it_optim_load(&e, &o2, path), IT_ERR_NOT_FOUND);
    IT_CHECK_CONTAINS(e.msg, "attn.to_k.lora_A.exp_avg");
    IT_CHECK_INT(it_optim_load(&e, &o2, it_test_tmp(t, "missing.safetensors")), IT_ERR_IO);
    it_optim_free(&o2);
    it_optim_free(&o);
}

IT_TEST(optim_rejects_bad_arguments)
{
    pset s;
    pset_init(&s, 1);
    it_optim o;
    it_err e;
    it_optim_config cfg = it_optim_adamw_defaults(1e-3);
    cfg.beta2 = 1.0;
    IT_CHECK_INT(it_optim_init(&e, &o, &cfg, s.p, NP), IT_ERR_ARG);
    IT_CHECK_STR(e.msg, "optimizer: invalid beta2 1 (need 0 <= beta2 < 1)");
    cfg = it_optim_sgd_defaults(0.1);
    cfg.nesterov = 1;
    IT_CHECK_INT(it_optim_init(&e, &o, &cfg, s.p, NP), IT_ERR_ARG);
    IT_CHECK_STR(e.msg, "optimizer: nesterov needs momentum > 0 and zero dampening");
    cfg = it_optim_sgd_defaults(-1);
    IT_CHECK_INT(it_optim_init(&e, &o, &cfg, s.p, NP), IT_ERR_ARG);
    IT_CHECK_STR(e.msg, "optimizer: invalid learning rate -1");
    cfg = it_optim_adamw_defaults(1e-3);
    s.p[1].grad = NULL;
    IT_CHECK_INT(it_optim_init(&e, &o, &cfg, s.p, NP), IT_ERR_ARG);
    IT_CHECK_STR(e.msg, "optimizer: trainable parameter 'down.0.bias' has no grad");
    s.p[1].grad = s.grad[1];
    s.p[2].name = "down.0.weight";
    IT_CHECK_INT(it_optim_init(&e, &o, &cfg, s.p, NP), IT_ERR_ARG);
    IT_CHECK_STR(e.msg, "optimizer: duplicate parameter name 'down.0.weight'");
    it_ema ema;
    it_ema_config ec = it_ema_defaults();
    ec.decay = 1.5;
    IT_CHECK_INT(it_ema_init(&e, &ema, &ec, s.p, NP), IT_ERR_ARG);
    IT_CHECK_STR(e.msg, "ema: decay and min_decay must lie in [0, 1]");
}

/* Every allocation of init fails in turn: IT_ERR_NOMEM, nothing leaks. */
IT_TEST(optim_out_of_memory)
{
    pset s;
    pset_init(&s, 1);
    it_err e;
    it_optim_config cfg = it_optim_adamw_defaults(1e-3);
    int failures = 0;
    for (long n = 0; n < 40; n++) {
        it_optim o;
        it_ema ema;
        it_ema_config ec = it_ema_defaults();
        it_mem_fail_after(n, 0);
        it_status a = it_optim_init(&e, &o, &cfg, s.p, NP);
        if (a == IT_OK) it_optim_free(&o);
        it_mem_fail_after(n, 0);
        it_status b = it_ema_init(&e, &ema, &ec, s.p, NP);
        if (b == IT_OK) it_ema_free(&ema);
        it_mem_fail_after(-1, 0);
        IT_CHECK(a == IT_OK || a == IT_ERR_NOMEM);
        IT_CHECK(b == IT_OK || b == IT_ERR_NOMEM);
        failures += (a == IT_ERR_NOMEM) + (b == IT_ERR_NOMEM);
    }
    IT_CHECK(failures >= 10);
}

/* Clipping by hand: norm of [3, 4] is 5; max_norm 1 scales by 1/(5+1e-6);
 * frozen gradients are neither counted nor scaled. */
IT_TEST(optim_clip_grad_norm_by_hand)
{
    float x[2] = {0, 0}, g[2] = {3, 4}, fx[1] = {0}, fg[1] = {100};
    it_optim_param p[2] = {{"a", x, g, 2, 0}, {"f", fx, fg, 1, 1}};
    it_optim o;
    it_err e;
    it_optim_config cfg = it_optim_sgd_defaults(1.0);
    IT_REQUIRE_OK(it_optim_init(&e, &o, &cfg, p, 2), &e);
    IT_CHECK_NEAR(it_optim_clip_grad_norm(&o, 1.0), 5.0, 1e-6);
    IT_CHECK_NEAR(g[0], 3.0f * (1.0f / (5.0f + 1e-6f)), 1e-7);
    IT_CHECK_NEAR(fg[0], 100, 0);
    IT_CHECK_NEAR(it_optim_clip_grad_norm(&o, 10.0), 1.0, 1e-6); /* no scaling above the norm */
    it_optim_step(&o, 1.0);
    IT_CHECK_NEAR(x[1], -0.8f, 1e-6);
    IT_CHECK_NEAR(fx[0], 0, 0);
    it_optim_zero_grad(&o);
    IT_CHECK(g[0] == 0 && g[1] == 0 && fg[0] == 100);
    it_optim_free(&o);
}
