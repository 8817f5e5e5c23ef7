/* Error codes and the per-thread message of the last failure. */
#include "ptl/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_message[512];

const char *ptl_strerror(int code)
{
    switch (code) {
    case PTL_OK: return "success";
    case PTL_EINVAL: return "invalid argument";
    case PTL_ENOMEM: return "out of memory";
    case PTL_EIO: return "I/O error";
    case PTL_EFORMAT: return "bad file format";
    case PTL_EMPI: return "MPI error";
    case PTL_ERANGE: return "value out of range";
    case PTL_ESTOPPED: return "stopped on request";
    default: return "unknown error";
    }
}

int ptl_error(int code, const char *fmt, ...)
{
    /* Format into a local buffer first: callers may pass ptl_error_message() itself as an
     * argument to wrap a lower-level message with context. */
    char msg[sizeof last_message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(last_message, msg, sizeof msg);
    return code;
}

const char *ptl_error_message(void)
{
    return last_message;
}

void ptl_error_clear(void)
{
    last_message[0] = '\0';
}
