/* safetensors_header.c: libFuzzer harness for the safetensors reader.
 *
 * Feeds arbitrary bytes to it_safetensors_parse (the code path of
 * it_safetensors_open after the mmap). A crash, a sanitizer report, a leak
 * of it_malloc blocks, a failure without a one-line message, or an accepted
 * file that breaks the reader's promises is a finding. The promises checked
 * on every accepted input:
 *   - every tensor's bytes lie inside the input, tiling the data section;
 *   - nbytes == numel x element size; lookup by name finds each tensor;
 *   - metadata lookup finds each pair; load_f32 works for supported dtypes;
 *   - writing the tensors and metadata back with the writer and parsing the
 *     result gives the same tensors and bytes (reader/writer agree). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "tensor/safetensors.h"

#define CHECK(c)                                                                               \
    do {                                                                                       \
        if (!(c)) abort();                                                                     \
    } while (0)

static void check_tensors(const it_safetensors *f, const uint8_t *data, size_t size)
{
    size_t n = it_safetensors_count(f);
    const uint8_t *pos = NULL;
    for (size_t i = 0; i < n; i++) {
        const it_safetensors_tensor *t = it_safetensors_at(f, i);
        CHECK(t->data >= data && t->nbytes <= size && t->data + t->nbytes <= data + size);
        if (pos) CHECK(t->data == pos);
        pos = t->data + t->nbytes;
        unsigned bits = it_safetensors_dtype_bits(t->dtype_name);
        CHECK(bits > 0 && t->numel * bits / 8 == t->nbytes);
        CHECK(it_safetensors_find(f, t->name) == t);
        CHECK(t->n_dims >= 0 && t->n_dims <= IT_SAFETENSORS_MAX_DIMS);
        if (t->supported && t->numel <= (1u << 20)) {
            float *buf = malloc(t->numel ? t->numel * sizeof *buf : 1);
            it_err err;
            CHECK(it_safetensors_load_f32(&err, f, t, buf, t->numel) == IT_OK);
            free(buf);
        }
    }
    if (n) CHECK(pos == data + size);
    for (size_t i = 0; i < it_safetensors_metadata_count(f); i++) {
        const char *k, *v;
        it_safetensors_metadata_at(f, i, &k, &v);
        CHECK(it_safetensors_metadata_get(f, k) == v);
    }
}

static void check_rewrite(const it_safetensors *f)
{
    it_err err;
    it_safetensors_writer *w;
    CHECK(it_safetensors_writer_new(&err, &w) == IT_OK);
    for (size_t i = 0; i < it_safetensors_count(f); i++) {
        const it_safetensors_tensor *t = it_safetensors_at(f, i);
        CHECK(it_safetensors_writer_add_raw(&err, w, t->name, t->dtype_name, t->n_dims, t->shape,
                                            t->data) == IT_OK);
    }
    for (size_t i = 0; i < it_safetensors_metadata_count(f); i++) {
        const char *k, *v;
        it_safetensors_metadata_at(f, i, &k, &v);
        CHECK(it_safetensors_writer_set_metadata(&err, w, k, v) == IT_OK);
    }
    it_buf buf;
    it_buf_init(&buf);
    CHECK(it_safetensors_writer_to_buf(&err, w, &buf) == IT_OK);
    CHECK(buf.len >= 8 && (buf.len - 8) >= it_safetensors_total_bytes(f));
    it_safetensors *g;
    CHECK(it_safetensors_parse(&err, &g, (const uint8_t *)buf.data, buf.len, "rewrite") == IT_OK);
    CHECK(it_safetensors_count(g) == it_safetensors_count(f));
    CHECK(it_safetensors_metadata_count(g) == it_safetensors_metadata_count(f));
    for (size_t i = 0; i < it_safetensors_count(f); i++) {
        const it_safetensors_tensor *a = it_safetensors_at(f, i);
        const it_safetensors_tensor *b = it_safetensors_find(g, a->name);
        CHECK(b && b->nbytes == a->nbytes && b->n_dims == a->n_dims && b->numel == a->numel);
        CHECK(strcmp(a->dtype_name, b->dtype_name) == 0);
        CHECK(memcmp(a->shape, b->shape, sizeof a->shape[0] * (size_t)a->n_dims) == 0);
        CHECK(a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0);
    }
    it_safetensors_close(g);
    it_buf_free(&buf);
    it_safetensors_writer_free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t live = it_mem_live_blocks();
    it_err err;
    it_err_clear(&err);
    it_safetensors *f = (void *)1;
    if (it_safetensors_parse(&err, &f, data, size, "fuzz") == IT_OK) {
        CHECK(f != NULL);
        size_t hlen = 0;
        for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | data[i];
        check_tensors(f, data + 8 + hlen, size - 8 - hlen);
        check_rewrite(f);
        it_safetensors_close(f);
    } else {
        /* Failures leave no handle and say why, on one line, naming the source. */
        CHECK(f == NULL && err.msg[0] && !strchr(err.msg, '\n'));
        CHECK(strncmp(err.msg, "fuzz: ", 6) == 0);
    }
    CHECK(it_mem_live_blocks() == live);
    return 0;
}
