#ifndef PTUNE_CDNNL_SHIM_H
#define PTUNE_CDNNL_SHIM_H
#include <oneapi/dnnl/dnnl.h>


// The OpenMP runtime oneDNN runs on (GNU libgomp, as Debian builds it). The element-wise
// kernels run on the same threads through the entry point GCC emits for `#pragma omp
// parallel`, so one set of threads serves both and none spins against the other.
void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
int omp_get_thread_num(void);
int omp_get_num_threads(void);
void omp_set_num_threads(int);

#endif
