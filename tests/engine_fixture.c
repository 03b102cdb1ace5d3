/* engine_fixture.c: the engine tests' fixture loader.
 *
 * Reads the safetensors layout directly (u64 header length, JSON header,
 * data) with jansson; only F32 and I32 tensors, which is all the generator
 * writes. Kept independent of src/tensor/safetensors.c so that the engine's
 * tests do not depend on another module's state. */
#include "engine_fixture.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"

#define EFX_MAX 512

struct efx {
    uint8_t *bytes;
    size_t n;
    json_t *hdr;
    const uint8_t *data; /* data section */
    size_t n_data;
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
    if (it_file_read(err, &f->bytes, &f->n, path, (size_t)64 << 20) != IT_OK) goto fail;
    uint64_t hl = 0;
    if (f->n < 8) goto bad;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | f->bytes[i];
    if (hl > f->n - 8) goto bad;
    json_error_t je;
    f->hdr = json_loadb((const char *)f->bytes + 8, (size_t)hl, 0, &je);
    if (!f->hdr || !json_is_object(f->hdr)) goto bad;
    f->data = f->bytes + 8 + hl;
    f->n_data = f->n - 8 - (size_t)hl;
    return f;
bad:
    it_err_set(err, IT_ERR_FORMAT, "%s: not a safetensors file", path);
fail:
    efx_close(f);
    return NULL;
}

void efx_close(efx *f)
{
    if (!f) return;
    for (int i = 0; i < f->n_owned; i++) {
        it_free(f->owned[i]->data);
        it_free(f->owned[i]->grad);
        it_free(f->owned[i]);
    }
    if (f->hdr) json_decref(f->hdr);
    it_free(f->bytes);
    it_free(f);
}

int efx_has(efx *f, const char *name) { return json_object_get(f->hdr, name) != NULL; }

const char *efx_meta(efx *f, const char *key)
{
    return json_string_value(json_object_get(json_object_get(f->hdr, "__metadata__"), key));
}

it_tensor *efx_get(efx *f, const char *name, int with_grad)
{
    json_t *e = json_object_get(f->hdr, name);
    if (!e || f->n_owned >= EFX_MAX) return NULL;
    const char *dt = json_string_value(json_object_get(e, "dtype"));
    json_t *shape = json_object_get(e, "shape"), *offs = json_object_get(e, "data_offsets");
    if (!dt || !json_is_array(shape) || json_array_size(shape) > IT_MAX_DIMS || json_array_size(offs) != 2) return NULL;
    it_dtype dtype = strcmp(dt, "F32") == 0 ? IT_DTYPE_F32 : strcmp(dt, "I32") == 0 ? IT_DTYPE_I32 : IT_DTYPE_COUNT;
    if (dtype == IT_DTYPE_COUNT) return NULL;
    int64_t sh[IT_MAX_DIMS];
    int nd = (int)json_array_size(shape);
    for (int i = 0; i < nd; i++) sh[i] = json_integer_value(json_array_get(shape, (size_t)i));
    int64_t numel = it_shape_numel(nd, sh);
    json_int_t b = json_integer_value(json_array_get(offs, 0)), en = json_integer_value(json_array_get(offs, 1));
    if (numel < 0 || b < 0 || en < b || (size_t)en > f->n_data || (en - b) != numel * 4) return NULL;
    it_tensor *t = it_calloc(1, sizeof *t);
    void *data = it_malloc((size_t)(en - b) + 4);
    int g = with_grad && dtype == IT_DTYPE_F32;
    float *grad = g ? it_calloc((size_t)numel + 1, sizeof(float)) : NULL;
    if (!t || !data || (g && !grad)) {
        it_free(t), it_free(data), it_free(grad);
        return NULL;
    }
    memcpy(data, f->data + b, (size_t)(en - b));
    it_tensor_init_param(NULL, t, NULL, data, grad, nd, sh);
    t->dtype = dtype;
    f->owned[f->n_owned++] = t;
    return t;
}
