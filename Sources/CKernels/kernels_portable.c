// The channel-wise kernels for any x86-64 (or other) CPU: the compiler's baseline vectors.
#include "CKernels.h"
#include "kernels.h"

#define ISA_NAME(name) name##_portable
#define LANES 4
#include "elementwise_template.h"
