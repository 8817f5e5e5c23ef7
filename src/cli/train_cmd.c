/* placeholder: being written */
#include <stdio.h>
#include "cli/cli.h"
int ptl_cli_train(int argc, char **argv)
{
    (void)argc; (void)argv;
    fputs("ptl: not built yet\n", stderr);
    return 1;
}
int ptl_cli_eval(int argc, char **argv)
{
    (void)argc; (void)argv;
    return 1;
}
