/* engine_fixture.c: the engine tests' fixture loader, on top of the
 * project's safetensors reader (tensor/safetensors.h). */
#include "engine_fixture.h"

#include <string.h>

#include "base/mem.h"
#include "tensor/safetensors.h"

#define EFX_MAX 512

struct efx {
    it_safetensors *st;
    it_tensor *owned[EFX_MAX];
    int n_owned;
};

efx *efx_open(it_err *err, const char *path)
{
    efx *f = it_calloc(1, sizeof *f);
    if (!f) {
        it_err_set(err, IT_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (it_safetensors_open(err, &f->st, path) != IT_OK) {
        it_free(f);
        return NULL;
    }
    return f;
}

void efx_close(efx *f)
{
    if (!f) return;
    for (int i = 0; i < f->n_owned; i++) {
        it_free(f->owned[i]->data);
        it_free(f->owned[i]->grad);
        it_free(f->owned[i]);
    }
    it_safetensors_close(f->st);
    it_free(f);
}

int efx_has(efx *f, const char *name) { return it_safetensors_find(f->st, name) != NULL; }

const char *efx_meta(efx *f, const char *key) { return it_safetensors_metadata_get(f->st, key); }

it_tensor *efx_get(efx *f, const char *name, int with_grad)
{
    const it_safetensors_tensor *st = it_safetensors_find(f->st, name);
    if (!st || !st->supported || f->n_owned >= EFX_MAX) return NULL;
    if (st->dtype != IT_DTYPE_F32 && st->dtype != IT_DTYPE_I32) return NULL;
    it_tensor *t = it_calloc(1, sizeof *t);
    void *data = it_malloc(st->nbytes + 4);
    int g = with_grad && st->dtype == IT_DTYPE_F32;
    float *grad = g ? it_calloc((size_t)st->numel + 1, sizeof(float)) : NULL;
    if (!t || !data || (g && !grad)) {
        it_free(t), it_free(data), it_free(grad);
        return NULL;
    }
    memcpy(data, st->data, st->nbytes); /* the mapping may be unaligned */
    it_tensor_init_param(NULL, t, st->name, data, grad, st->n_dims, st->shape);
    t->dtype = st->dtype;
    f->owned[f->n_owned++] = t;
    return t;
}
