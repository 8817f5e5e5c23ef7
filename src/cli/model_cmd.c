/* placeholder: being written */
#include <stdio.h>
#include "cli/cli.h"
int ptl_cli_model(int argc, char **argv)
{
    (void)argc;
    fprintf(stderr, "ptl %s: not built yet\n", argv[0]);
    return 1;
}
