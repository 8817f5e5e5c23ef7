/* The watchdog (dist.h): a thread that ends the whole job when this rank stops making progress,
 * so a rank that died, hung or failed elsewhere never leaves the others waiting forever in a
 * collective. Progress is a heartbeat the training loop sets at every phase change. */
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "ptl/core.h"
#include "ptl/dist.h"

static struct {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int running;
    double seconds;
    double last;       /* ptl_now() of the last beat */
    const char *phase; /* static strings only */
    long step;
} dog = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static void *watch(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&dog.lock);
    while (dog.running) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&dog.wake, &dog.lock, &until);
        double idle = ptl_now() - dog.last;
        if (dog.running && idle > dog.seconds) {
            char msg[256];
            snprintf(msg, sizeof msg,
                     "no progress for %.0f s (in %s, step %ld; dist.timeout %.0f s): another rank "
                     "has probably died or hung; ending the job",
                     idle, dog.phase, dog.step, dog.seconds);
            ptl_dist_abort(3, msg);
        }
    }
    pthread_mutex_unlock(&dog.lock);
    return NULL;
}

int ptl_watchdog_start(double seconds)
{
    if (seconds <= 0 || ptl_world()->size == 1 || dog.running)
        return PTL_OK;
    dog.seconds = seconds;
    dog.last = ptl_now();
    dog.phase = "start";
    dog.step = 0;
    dog.running = 1;
    if (pthread_create(&dog.thread, NULL, watch, NULL) != 0) {
        dog.running = 0;
        return ptl_error(PTL_EIO, "watchdog: cannot start its thread");
    }
    return PTL_OK;
}

void ptl_watchdog_beat(const char *phase, long step)
{
    if (!dog.running)
        return;
    pthread_mutex_lock(&dog.lock);
    dog.last = ptl_now();
    dog.phase = phase;
    if (step >= 0)
        dog.step = step;
    pthread_mutex_unlock(&dog.lock);
}

void ptl_watchdog_stop(void)
{
    if (!dog.running)
        return;
    pthread_mutex_lock(&dog.lock);
    dog.running = 0;
    pthread_cond_signal(&dog.wake);
    pthread_mutex_unlock(&dog.lock);
    pthread_join(dog.thread, NULL);
}
