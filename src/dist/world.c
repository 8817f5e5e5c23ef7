/* The MPI world of a ptl process and small collectives on it (dist.h). MPI is initialised only
 * when a launcher started the process, so a plain `ptl train` needs no mpirun and makes no MPI
 * call at all. Only the main thread calls MPI (MPI_THREAD_FUNNELED), except the watchdog's
 * MPI_Abort, which Open MPI allows from any thread. */
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ptl/core.h"
#include "ptl/dist.h"

static struct ptl_world world = {0, 1, 0, 1, 0};

const struct ptl_world *ptl_world(void)
{
    return &world;
}

/* Variables that Open MPI's mpirun, Slurm's srun with PMIx, and MPICH-style launchers set. */
static int launched_by_mpi(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK",
                                       "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i]) != NULL)
            return 1;
    return 0;
}

static int mpi_fail(int err, const char *what)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(err, text, &len);
    return ptl_error(PTL_EMPI, "MPI %s failed: %s", what, text);
}

int ptl_dist_init(int *argc, char ***argv)
{
    if (world.mpi || !launched_by_mpi())
        return PTL_OK;
    /* Open MPI 4.1's non-blocking allreduce picks a binomial reduce + broadcast for in-place
     * calls on few ranks, half as fast as the blocking one on one node and 2 log2(p) times the
     * traffic at scale; its ring schedule matches MPI_Allreduce (bench/dist_scaling.sh). A
     * user's own setting wins. */
    setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "1", 0);
    int provided = 0;
    int err = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (err != MPI_SUCCESS)
        return ptl_error(PTL_EMPI, "MPI_Init_thread failed (error %d)", err);
    /* Errors come back as codes, reported with the rank, instead of killing the job silently. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    world.mpi = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &world.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world.size);
    MPI_Comm node;
    err = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, world.rank, MPI_INFO_NULL,
                              &node);
    if (err != MPI_SUCCESS)
        return mpi_fail(err, "Comm_split_type");
    MPI_Comm_rank(node, &world.local_rank);
    MPI_Comm_size(node, &world.local_size);
    MPI_Comm_free(&node);
    return PTL_OK;
}

void ptl_dist_finalize(void)
{
    if (world.mpi) {
        MPI_Finalize();
        world.mpi = 0;
    }
}

_Noreturn void ptl_dist_abort(int status, const char *msg)
{
    if (world.size > 1)
        fprintf(stderr, "ptl: rank %d: %s\n", world.rank, msg);
    else
        fprintf(stderr, "ptl: %s\n", msg);
    fflush(stderr);
    if (world.mpi)
        MPI_Abort(MPI_COMM_WORLD, status);
    _exit(status);
}

int ptl_dist_sum_doubles(void *ctx, double *values, int count)
{
    (void)ctx;
    if (world.size == 1)
        return PTL_OK;
    int err = MPI_Allreduce(MPI_IN_PLACE, values, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return err == MPI_SUCCESS ? PTL_OK : mpi_fail(err, "Allreduce");
}

/* MPI counts are int: big arrays go in chunks. */
enum { CHUNK = 1 << 28 };

int ptl_dist_sum_floats(float *values, size_t count)
{
    for (size_t i = 0; world.size > 1 && i < count; i += CHUNK) {
        int n = count - i < CHUNK ? (int)(count - i) : CHUNK;
        int err = MPI_Allreduce(MPI_IN_PLACE, values + i, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        if (err != MPI_SUCCESS)
            return mpi_fail(err, "Allreduce");
    }
    return PTL_OK;
}

int ptl_dist_reduce_floats(float *values, size_t count, int root)
{
    for (size_t i = 0; world.size > 1 && i < count; i += CHUNK) {
        int n = count - i < CHUNK ? (int)(count - i) : CHUNK;
        int err = MPI_Reduce(world.rank == root ? MPI_IN_PLACE : values + i, values + i, n,
                             MPI_FLOAT, MPI_SUM, root, MPI_COMM_WORLD);
        if (err != MPI_SUCCESS)
            return mpi_fail(err, "Reduce");
    }
    return PTL_OK;
}

int ptl_dist_gather_floats(const float *mine, size_t count, float *out, int root)
{
    if (world.size == 1) {
        memcpy(out, mine, count * sizeof *mine);
        return PTL_OK;
    }
    if (count > (size_t)INT_MAX)
        return ptl_error(PTL_ERANGE, "gather: %zu floats per rank are more than MPI can send",
                         count);
    int err = MPI_Gather(mine, (int)count, MPI_FLOAT, out, (int)count, MPI_FLOAT, root,
                         MPI_COMM_WORLD);
    return err == MPI_SUCCESS ? PTL_OK : mpi_fail(err, "Gather");
}

int ptl_dist_min_long(long *value)
{
    if (world.size == 1)
        return PTL_OK;
    int err = MPI_Allreduce(MPI_IN_PLACE, value, 1, MPI_LONG, MPI_MIN, MPI_COMM_WORLD);
    return err == MPI_SUCCESS ? PTL_OK : mpi_fail(err, "Allreduce");
}

int ptl_dist_broadcast(void *data, size_t bytes, int root)
{
    if (world.size == 1)
        return PTL_OK;
    int err = MPI_Bcast(data, (int)bytes, MPI_BYTE, root, MPI_COMM_WORLD);
    return err == MPI_SUCCESS ? PTL_OK : mpi_fail(err, "Bcast");
}

int ptl_dist_any(int failed)
{
    int any = failed != 0;
    if (world.size > 1)
        MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD);
    return any;
}

int ptl_dist_allgather_u64(unsigned long long value, unsigned long long *out)
{
    if (world.size == 1) {
        out[0] = value;
        return PTL_OK;
    }
    int err = MPI_Allgather(&value, 1, MPI_UNSIGNED_LONG_LONG, out, 1, MPI_UNSIGNED_LONG_LONG,
                            MPI_COMM_WORLD);
    return err == MPI_SUCCESS ? PTL_OK : mpi_fail(err, "Allgather");
}

int ptl_dist_default_threads(void)
{
    const char *s = getenv("PTL_THREADS");
    if (s == NULL || *s == '\0')
        s = getenv("SLURM_CPUS_PER_TASK");
    if (s != NULL && *s != '\0') {
        char *end;
        long v = strtol(s, &end, 10);
        if (*end != '\0' || v < 1 || v > 4096)
            return ptl_error(PTL_EINVAL, "%s=%s: expected a positive integer",
                             getenv("PTL_THREADS") ? "PTL_THREADS" : "SLURM_CPUS_PER_TASK", s);
        return (int)v;
    }
    int mine = ptl_threads_available();
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    /* Unbound ranks see every core: share them. A rank the launcher bound to its own cores
     * (mpirun --bind-to core) keeps what it was given. */
    if (world.local_size > 1 && mine >= online) {
        int share = mine / world.local_size;
        return share > 0 ? share : 1;
    }
    return mine;
}
