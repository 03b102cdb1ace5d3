/* threads.h: the thread count of the process (OpenMP).
 *
 * Owns: the one place that decides how many threads parallel regions use.
 * Default: OMP_NUM_THREADS when set, else the number of online CPUs. The CLI's
 * --threads overrides both. BLAS calls follow the same count when OpenBLAS
 * is the OpenMP build (what install-deps.sh installs). */
#ifndef IT_THREADS_H
#define IT_THREADS_H

void it_threads_set(int n); /* n <= 0 restores the default */
int it_threads_get(void);

#endif
