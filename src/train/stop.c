/* Stopping a run on request (loop.h): SIGUSR1 and SIGTERM only set a flag; the training loop
 * sees it at the next step boundary, writes a checkpoint and returns PTL_ESTOPPED, so a Slurm
 * job can be preempted or requeued without losing the steps it took. */
#include <signal.h>
#include <string.h>

#include "train/loop.h"

static volatile sig_atomic_t requested;
static struct sigaction saved_usr1, saved_term;

static void on_signal(int sig)
{
    requested = sig;
}

void ptl_stop_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART; /* I/O in progress carries on; the loop checks between steps */
    sigemptyset(&sa.sa_mask);
    requested = 0;
    sigaction(SIGUSR1, &sa, &saved_usr1);
    sigaction(SIGTERM, &sa, &saved_term);
}

void ptl_stop_uninstall(void)
{
    sigaction(SIGUSR1, &saved_usr1, NULL);
    sigaction(SIGTERM, &saved_term, NULL);
}

int ptl_stop_requested(void)
{
    return requested;
}
