// Loads OpenBLAS at first use, after choosing its core.
//
// OpenBLAS (a DYNAMIC_ARCH build such as Debian's) selects its kernels once, in its library
// constructor: from the environment variable OPENBLAS_CORETYPE if set (documented in OpenBLAS's
// README), else from its own CPU detection, which falls back to old SSE kernels on CPUs newer
// than the library. The package therefore does not link libopenblas at load time. The first
// BLAS call (or atso_blas_load) chooses a core with atso_choose_core, puts it in
// OPENBLAS_CORETYPE for the duration of dlopen("libopenblas.so.0"), restores the environment,
// and resolves the functions below. A user's own OPENBLAS_CORETYPE wins unless the CPU cannot
// run that core.
#define _GNU_SOURCE
#include <ctype.h>
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "COpenBLAS.h"

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *,
                         int, float, float *, int);
typedef void (*set_threads_fn)(int);
typedef int (*get_threads_fn)(void);
typedef char *(*string_fn)(void);

static sgemm_fn p_sgemm;
static set_threads_fn p_set_num_threads;
static get_threads_fn p_get_num_threads;
static string_fn p_get_corename;
static string_fn p_get_config;
static atso_blas_status status;
static int default_threads = 1;

// The thread count OpenBLAS would have chosen: OPENBLAS_NUM_THREADS, GOTO_NUM_THREADS or
// OMP_NUM_THREADS if set (in that order, as OpenBLAS reads them), else the CPUs this process
// may run on.
static int requested_threads(void) {
  static const char *const names[] = {"OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS",
                                      "OMP_NUM_THREADS"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    const char *value = getenv(names[i]);
    if (value && atoi(value) > 0) return atoi(value);
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void *required_symbol(void *handle, const char *name) {
  void *p = dlsym(handle, name);
  if (!p) {
    fprintf(stderr, "atso: the OpenBLAS library loaded has no %s: %s\n", name, dlerror());
    exit(127);
  }
  return p;
}

static void load(void) {
  const atso_cpu_info *cpu = atso_cpu();
  int is_amd = strcmp(cpu->vendor, "AuthenticAMD") == 0 || strcmp(cpu->vendor, "HygonGenuine") == 0;
  const char *user = getenv("OPENBLAS_CORETYPE");
  status.choice = atso_choose_core(cpu->features, is_amd, user);
  const atso_core_choice *c = &status.choice;

  // Only touch the environment when the value OpenBLAS should see differs from the user's.
  int changed = strcmp(c->requested, c->user) != 0;
  if (changed) {
    if (*c->requested) setenv("OPENBLAS_CORETYPE", c->requested, 1);
    else unsetenv("OPENBLAS_CORETYPE");
  }
  // The toolkit runs OpenBLAS single-threaded inside its own workers: loaded with one thread,
  // OpenBLAS starts no threads of its own (they would spin, waiting for work that never comes).
  default_threads = requested_threads();
  const char *user_threads = getenv("OPENBLAS_NUM_THREADS");
  char saved_threads[32] = "";
  if (user_threads) snprintf(saved_threads, sizeof saved_threads, "%s", user_threads);
  setenv("OPENBLAS_NUM_THREADS", "1", 1);
  static const char *const names[] = {"libopenblas.so.0", "libopenblas.so"};
  void *handle = NULL;
  const char *error = NULL;
  for (size_t i = 0; i < sizeof names / sizeof names[0] && !handle; i++) {
    handle = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!handle && !error) error = dlerror();
  }
  if (changed) {
    if (*c->user) setenv("OPENBLAS_CORETYPE", c->user, 1);
    else unsetenv("OPENBLAS_CORETYPE");
  }
  if (user_threads) setenv("OPENBLAS_NUM_THREADS", saved_threads, 1);
  else unsetenv("OPENBLAS_NUM_THREADS");
  if (!handle) {
    fprintf(stderr,
            "atso: cannot load OpenBLAS (libopenblas.so.0): %s\n"
            "Install it (Debian/Ubuntu: apt-get install libopenblas0-pthread, or `make deps`).\n",
            error ? error : "not found");
    exit(127);
  }
  p_sgemm = (sgemm_fn)required_symbol(handle, "cblas_sgemm");
  p_set_num_threads = (set_threads_fn)required_symbol(handle, "openblas_set_num_threads");
  p_get_num_threads = (get_threads_fn)required_symbol(handle, "openblas_get_num_threads");
  p_get_corename = (string_fn)required_symbol(handle, "openblas_get_corename");
  p_get_config = (string_fn)required_symbol(handle, "openblas_get_config");

  Dl_info info;
  if (dladdr((void *)p_sgemm, &info) && info.dli_fname) {
    char *real = realpath(info.dli_fname, NULL);
    snprintf(status.library_path, sizeof status.library_path, "%s", real ? real : info.dli_fname);
    free(real);
  }
  status.dynamic_arch = dlsym(handle, "gotoblas_dynamic_init") != NULL;
  const char *const *known = atso_known_cores();
  for (size_t i = 0; known[i] && i < sizeof status.library_has_core; i++) {
    char symbol[64] = "gotoblas_";
    size_t n = strlen(symbol);
    for (const char *s = known[i]; *s && n + 1 < sizeof symbol; s++) symbol[n++] = (char)toupper(*s);
    symbol[n] = 0;
    status.library_has_core[i] = dlsym(handle, symbol) != NULL;
  }
}

const atso_blas_status *atso_blas_load(void) {
  pthread_once(&once, load);
  return &status;
}

const char *atso_blas_corename(void) {
  atso_blas_load();
  return p_get_corename();
}

const char *atso_blas_config(void) {
  atso_blas_load();
  return p_get_config();
}

int atso_blas_get_num_threads(void) {
  atso_blas_load();
  return p_get_num_threads();
}

int atso_blas_default_threads(void) {
  atso_blas_load();
  return default_threads;
}

void atso_blas_set_num_threads(int n) {
  atso_blas_load();
  p_set_num_threads(n);
}

// CBLAS constants (cblas.h): CblasRowMajor = 101, CblasNoTrans = 111, CblasTrans = 112.
void atso_sgemm(int transpose_a, int transpose_b, int m, int n, int k, float alpha,
                const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc) {
  atso_blas_load();
  p_sgemm(101, transpose_a ? 112 : 111, transpose_b ? 112 : 111, m, n, k, alpha, a, lda, b, ldb,
          beta, c, ldc);
}
