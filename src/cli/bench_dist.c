/* ptl bench dist: placeholder until the benchmark lands. */
#include <stdio.h>

#include "cli/cli.h"

int ptl_cli_bench_dist(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fputs("ptl bench dist: not built yet\n", stderr);
    return 1;
}
