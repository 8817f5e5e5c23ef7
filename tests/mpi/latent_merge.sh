#!/bin/sh
# Latent-state merge across MPI ranks: tests/mpi/test_latent_merge without a launcher (a world of
# one rank, no MPI: every merge is the identity), then under mpirun with 1, 2 and 4 ranks (each
# rank's states and BatchNorm statistics differ; mean, weighted, ema and none merges and the
# buffer averaging are checked against a recomputation from plain MPI_Allgather).
# Skips (77) the mpirun runs when mpirun is missing.
set -u
top_builddir=${top_builddir:-.}
prog="$top_builddir/tests/mpi/test_latent_merge"

[ -x "$prog" ] || { echo "FAIL: $prog not built"; exit 1; }

# Root in containers and CI; one thread per rank, which yields its core while waiting.
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 PTL_THREADS=1 OMP_WAIT_POLICY=passive
export OMPI_ALLOW_RUN_AS_ROOT OMPI_ALLOW_RUN_AS_ROOT_CONFIRM PTL_THREADS OMP_WAIT_POLICY

t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
fails=0

# No launcher variables, so ptl_dist_init must leave MPI alone.
if timeout 300 env -u OMPI_COMM_WORLD_SIZE -u OMPI_COMM_WORLD_RANK -u PMIX_RANK -u PMI_RANK \
    -u PMI_SIZE "$prog" >"$t/out" 2>&1; then
    echo "ok: without mpirun"
else
    echo "FAIL: test_latent_merge without mpirun (exit $?):"
    head -c 4000 "$t/out"
    fails=$((fails + 1))
fi

mpirun=$(command -v mpirun || command -v mpiexec) || {
    [ "$fails" -eq 0 ] || exit 1
    echo "SKIP: no mpirun/mpiexec for the runs with 1, 2 and 4 ranks"
    exit 77
}
for r in 1 2 4; do
    if timeout 300 "$mpirun" --oversubscribe -n "$r" "$prog" >"$t/out" 2>&1; then
        echo "ok: $r ranks"
    else
        echo "FAIL: test_latent_merge with $r ranks (exit $?):"
        head -c 4000 "$t/out"
        fails=$((fails + 1))
    fi
done
[ "$fails" -eq 0 ] || exit 1
echo "latent_merge: without mpirun and with 1, 2 and 4 ranks passed"
