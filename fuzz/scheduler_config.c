/* scheduler_config.c: libFuzzer harness for scheduler_config.json parsing
 * and the samplers built from it.
 *
 * The first byte picks the sampler (kind, Karras) and the second the step
 * count (1..64); the rest is the JSON text. A config that parses is turned
 * into a sampler, and a few steps are run on a small latent with a fixed
 * model output. Findings: crashes, sanitizer reports (out-of-range schedule
 * indexing above all), it_malloc leaks, an error without a message, or a
 * broken promise: timesteps inside the schedule, sigmas finite, >= 0 and
 * ending at 0. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "diffusion/sampler.h"

#define CHECK(c)                                                                               \
    do {                                                                                       \
        if (!(c)) abort();                                                                     \
    } while (0)

static void run_sampler(const it_schedule_config *c, it_sampler_opts o, int steps)
{
    it_sampler s;
    it_err err;
    it_err_clear(&err);
    float x[8], m[8], noise[8];
    if (it_sampler_init(&err, &s, c, &o, steps, 8) != IT_OK) {
        CHECK(err.msg[0]);
        return;
    }
    for (int i = 0; i < s.n_steps; i++)
        CHECK(s.timesteps[i] >= 0 && s.timesteps[i] <= c->num_train_timesteps - 1);
    if (s.sigmas) {
        for (int i = 0; i <= s.n_steps; i++) CHECK(isfinite(s.sigmas[i]) && s.sigmas[i] >= 0);
        CHECK(s.sigmas[s.n_steps] == 0);
    }
    for (int i = 0; i < 8; i++) {
        x[i] = (float)(i - 4) * 0.25f;
        noise[i] = (float)(3 - i) * 0.1f;
    }
    for (int k = 0; k < 4 && s.step_index < s.n_steps; k++) {
        it_sampler_scale_input(&s, m, x);
        for (int i = 0; i < 8; i++) m[i] = 0.1f * m[i] + 0.01f;
        CHECK(it_sampler_step(&err, &s, x, m, noise) == IT_OK);
    }
    it_sampler_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    size_t live = it_mem_live_blocks();
    char *text = malloc(size - 1);
    if (!text) return 0;
    memcpy(text, data + 2, size - 2);
    text[size - 2] = '\0';
    it_schedule_config c;
    it_err err;
    it_err_clear(&err);
    if (it_schedule_config_parse(&err, &c, text, "fuzz") == IT_OK) {
        it_sampler_opts o = {(it_sampler_kind)(data[0] % 4), (data[0] >> 2) & 1, 0};
        if (o.kind == IT_SAMPLER_DDIM && (data[0] & 8)) o.eta = 0.5f;
        /* bounded so that one input stays fast */
        if (c.num_train_timesteps <= 5000) run_sampler(&c, o, 1 + data[1] % 64);
    } else {
        CHECK(err.msg[0]);
    }
    free(text);
    CHECK(it_mem_live_blocks() == live);
    return 0;
}
