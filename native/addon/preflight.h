/* What the kernel and this process must offer before anything is loaded. */
#ifndef SIDETRACE_PREFLIGHT_H
#define SIDETRACE_PREFLIGHT_H
#include <stddef.h>

/* 0 when everything is present; otherwise fills code (stable ST_AGENT_* code) and msg naming
 * every missing piece, and returns -1. */
int st_preflight(int want_tls, const char **code, char *msg, size_t msg_len);

#endif
