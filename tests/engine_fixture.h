/* engine_fixture.h: loads the engine's .safetensors fixtures in tests.
 *
 * A thin layer so that the engine tests read tensors by name as it_tensor
 * parameters (data and gradient buffers owned by the fixture). Names point
 * into the open file, valid until efx_close. */
#ifndef IT_ENGINE_FIXTURE_H
#define IT_ENGINE_FIXTURE_H

#include "tensor/tensor.h"

typedef struct efx efx;

/* NULL on failure (message in err). */
efx *efx_open(it_err *err, const char *path);
void efx_close(efx *f);
/* Tensor `name` as a parameter-like leaf: data copied into a buffer owned by
 * f; with_grad adds a zeroed gradient buffer (requires_grad). NULL if absent. */
it_tensor *efx_get(efx *f, const char *name, int with_grad);
int efx_has(efx *f, const char *name);
/* Metadata value or NULL. */
const char *efx_meta(efx *f, const char *key);

#endif
