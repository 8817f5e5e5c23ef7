/* placeholder: being written */
#include <stdio.h>
#include "cli/cli.h"
int ptl_cli_bench(int argc, char **argv)
{
    (void)argc; (void)argv;
    fputs("ptl bench: not built yet\n", stderr);
    return 1;
}
