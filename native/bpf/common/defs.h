/* Includes and constants every BPF part uses. vmlinux.h is generated at build time from the
 * running kernel's BTF (scripts/build-native.sh); CO-RE relocations make the object portable. */
#ifndef SIDETRACE_DEFS_H
#define SIDETRACE_DEFS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "../abi.h"

#define ST_AF_INET 2
#define ST_AF_INET6 10
#define ST_S_IFMT 00170000
#define ST_S_IFSOCK 0140000
#define ST_IPPROTO_TCP 6
#define ST_SOCK_STREAM 1
#define ST_EINPROGRESS 115

/* What a connection's first bytes said it carries; only HTTP is copied for now. */
enum st_proto {
	ST_PROTO_UNKNOWN = 0,
	ST_PROTO_HTTP1 = 1,
	ST_PROTO_HTTP2 = 2,
	ST_PROTO_TLS = 3, /* ciphertext on the socket: plaintext comes from the uprobes */
	ST_PROTO_OTHER = 4,
};

/* A connection first seen mid-stream may start being interesting at its next request. */
#define ST_MIDSTREAM_TRIES 8

static __always_inline __u64 st_conn_key(__u32 tgid, __s32 fd)
{
	return ((__u64)tgid << 32) | (__u32)fd;
}

#endif
