// SPDX-License-Identifier: GPL-2.0
/* The node agent's kernel side: socket syscalls, connection lifecycle, OpenSSL plaintext and
 * process lifecycle, each in its part; records go to one ring buffer (layout in abi.h). */
#include "common/defs.h"
#include "parts/syscalls.h"
#include "parts/tls-uprobes.h"
#include "parts/sock-state.h"
#include "parts/process.h"

/* GPL: bpf_probe_read_user and the ring buffer helpers are GPL-only. */
char LICENSE[] SEC("license") = "GPL";
