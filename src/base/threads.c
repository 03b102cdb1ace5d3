/* threads.c: thread count via OpenMP. */
#include "base/threads.h"

#include <omp.h>
#include <stdlib.h>
#include <unistd.h>

static int default_threads(void)
{
    const char *env = getenv("OMP_NUM_THREADS");
    if (env && atoi(env) > 0) return atoi(env);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void it_threads_set(int n)
{
    omp_set_num_threads(n > 0 ? n : default_threads());
}

int it_threads_get(void) { return omp_get_max_threads(); }
