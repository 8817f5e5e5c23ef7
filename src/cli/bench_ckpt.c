/* ptl bench ckpt: placeholder until the benchmark lands. */
#include <stdio.h>

#include "cli/cli.h"

int ptl_cli_bench_ckpt(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fputs("ptl bench ckpt: not built yet\n", stderr);
    return 1;
}
