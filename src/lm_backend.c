/* lm_backend.c: the backend registry (lm_backend.h).  The only file that
 * knows which backends were built: the CUDA backend (issue 7) adds its entry
 * here under HAVE_CUDA_BACKEND (to be defined by configure together with
 * building src/lm_backend_cuda.cu), and nowhere else in the engine. */
#include "config.h"

#include <string.h>

#include "lm_backend.h"

#ifdef HAVE_CUDA_BACKEND
extern const lm_backend_ops lm_backend_cuda_ops;
#endif

static const lm_backend_ops *const registry[] = {
    &lm_backend_blas_ops, /* first: the default */
    &lm_backend_ref_ops,
#ifdef HAVE_CUDA_BACKEND
    &lm_backend_cuda_ops,
#endif
};

const lm_backend_ops *lm_backend_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof registry / sizeof registry[0]; i++)
        if (!strcmp(registry[i]->name, name))
            return registry[i];
    return NULL;
}

const char *lm_backend_names(void)
{
#ifdef HAVE_CUDA_BACKEND
    return "blas, ref, cuda";
#else
    return "blas, ref";
#endif
}

const lm_backend_ops *lm_backend_default(void)
{
    return registry[0];
}
