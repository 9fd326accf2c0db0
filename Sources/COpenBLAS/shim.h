#pragma once
#include <cblas.h>
// OpenBLAS thread control (not part of the CBLAS standard header on every build).
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
