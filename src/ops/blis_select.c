/* Which BLIS sub-configuration (kernel set) ptl's GEMMs run on.
 *
 * BLIS picks its kernels once, at first use, from its own CPUID table, and the only way to pick
 * others is the BLIS_ARCH_TYPE environment variable, read at that first use. Debian 12's BLIS
 * 0.9.0 knows no x86 CPU newer than Zen 3 or Ice Lake: on Zen 5 it falls back to "generic",
 * its reference C kernels, and a ResNet-18 training step takes 2.4x as long as on its own
 * AVX-512 (skx) kernels on the same CPU (docs/performance.md). (Zen 4, CPU family 25 like
 * Zen 3, gets its zen3 kernels, which ran a step as fast as skx there: left alone.) So, before
 * main() and before anything calls BLIS, ptl__blis_select():
 *   - does nothing if BLIS_ARCH_TYPE is set (the user's choice, even one we would not make);
 *   - else asks BLIS, in a forked child so that this process's BLIS stays unchosen, what it
 *     would pick, and does nothing more unless that is "generic";
 *   - else tries skx (AVX-512), then haswell (AVX2 + FMA), on CPUs that have the instructions,
 *     each in a child that selects it and checks a small sgemm against a plain loop, and
 *     initialises this process's BLIS on the first that passes. A kernel set that is not built
 *     into this BLIS, or that fails, dies or computes wrongly in the child, is skipped.
 * A child costs a few milliseconds and runs only where BLIS would otherwise pick "generic". */
#include "ptl/ops.h"

#include <blis.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ops/gemm.h"

enum { PROBE_FAILED = 255 };

static char kernels[160] = "unknown";

/* In a child: C = A B for 8x8 matrices through BLIS on one thread, against a plain loop. */
static int sgemm_matches_loop(void)
{
    enum { N = 8 };
    float a[N * N], b[N * N], c[N * N], alpha = 1.0f, beta = 0.0f;
    for (int i = 0; i < N * N; i++) {
        a[i] = (float)((i * 7) % 11) - 5.0f;
        b[i] = (float)((i * 5) % 13) - 6.0f;
    }
    rntm_t rntm;
    bli_rntm_init(&rntm);
    bli_rntm_set_num_threads(1, &rntm);
    bli_rntm_disable_l3_sup(&rntm);
    bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, N, N, N, &alpha, a, N, 1, b, N, 1, &beta,
                 c, N, 1, NULL, &rntm);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            float want = 0.0f;
            for (int p = 0; p < N; p++)
                want += a[i * N + p] * b[p * N + j];
            if (fabsf(c[i * N + j] - want) > 1e-3f)
                return 0;
        }
    return 1;
}

/* The sub-configuration BLIS settles on with BLIS_ARCH_TYPE=want (want < 0: unset), asked in a
 * forked child; with want >= 0 the child also runs sgemm_matches_loop(). PROBE_FAILED if the
 * child could not run, died, or (want >= 0) got another configuration or a wrong product. */
static int probe(int want)
{
    pid_t pid = fork();
    if (pid < 0)
        return PROBE_FAILED;
    if (pid == 0) {
        /* BLIS reports an unbuilt configuration on stderr before aborting: not our user's news. */
        int null_fd = open("/dev/null", O_WRONLY);
        if (null_fd >= 0)
            dup2(null_fd, STDERR_FILENO);
        if (want >= 0) {
            char v[16];
            snprintf(v, sizeof v, "%d", want);
            setenv("BLIS_ARCH_TYPE", v, 1);
        }
        bli_init();
        int id = (int)bli_arch_query_id();
        if (want >= 0 && (id != want || !sgemm_matches_loop()))
            _exit(PROBE_FAILED);
        _exit(id >= 0 && id < PROBE_FAILED ? id : PROBE_FAILED);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return PROBE_FAILED;
    return WIFEXITED(status) ? WEXITSTATUS(status) : PROBE_FAILED;
}

static int cpu_runs(arch_t id)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (id == BLIS_ARCH_SKX)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    if (id == BLIS_ARCH_HASWELL)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    (void)id;
    return 0;
}

void ptl__blis_select(void)
{
    const char *user = getenv("BLIS_ARCH_TYPE");
    if (user != NULL) {
        /* Quoted in JSON progress logs: keep only what an arch id or name is made of. */
        char shown[17] = "";
        for (size_t i = 0, n = 0; user[i] != '\0' && n + 1 < sizeof shown; i++)
            if (isalnum((unsigned char)user[i]) || user[i] == '_')
                shown[n++] = user[i];
        snprintf(kernels, sizeof kernels, "set by BLIS_ARCH_TYPE=%s", shown);
        return;
    }
    int picked = probe(-1);
    if (picked != BLIS_ARCH_GENERIC) {
        snprintf(kernels, sizeof kernels, "chosen by BLIS");
        return;
    }
    static const arch_t candidates[] = {BLIS_ARCH_SKX, BLIS_ARCH_HASWELL};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        arch_t id = candidates[i];
        if (!cpu_runs(id) || probe((int)id) != (int)id)
            continue;
        /* Set only while BLIS initialises (it reads the variable then, once), so programs we
         * start, and Criterion's re-executed test workers, see the environment they were given
         * and choose for themselves. */
        char v[16];
        snprintf(v, sizeof v, "%d", (int)id);
        setenv("BLIS_ARCH_TYPE", v, 1);
        bli_init();
        unsetenv("BLIS_ARCH_TYPE");
        snprintf(kernels, sizeof kernels,
                 "chosen by ptl: BLIS %s has no kernels for this CPU and would run 'generic'",
                 bli_info_get_version_str());
        return;
    }
    snprintf(kernels, sizeof kernels, "chosen by BLIS; none of ptl's alternatives runs here");
}

const char *ptl_blis_kernels(void)
{
    static char line[256];
    bli_init(); /* BLIS checks a user's BLIS_ARCH_TYPE only once it is initialised */
    snprintf(line, sizeof line, "BLIS %s, kernels %s (%s)", bli_info_get_version_str(),
             bli_arch_string(bli_arch_query_id()), kernels);
    return line;
}
