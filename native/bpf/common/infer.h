/* In-kernel protocol inference from a stream's first bytes, so only traffic some parser wants
 * is copied: HTTP/1 (a method and a space, or a status line), the HTTP/2 preface or a server's
 * opening SETTINGS frame, and a TLS handshake record (whose plaintext the uprobes provide). */
#ifndef SIDETRACE_INFER_H
#define SIDETRACE_INFER_H
#include "defs.h"

#define ST_PEEK 16

static __always_inline int st_prefix(const char *b, const char *p, int n)
{
#pragma unroll
	for (int i = 0; i < 8; i++) {
		if (i >= n)
			return 1;
		if (b[i] != p[i])
			return 0;
	}
	return 1;
}

/* UNKNOWN when there are too few bytes to tell. */
static __always_inline __u8 st_infer(const void *ubuf, __u64 size, int kernel)
{
	char b[ST_PEEK] = {};
	if (size < 4)
		return ST_PROTO_UNKNOWN;
	if (kernel) {
		if (bpf_probe_read_kernel(b, size < ST_PEEK ? 4 : ST_PEEK, ubuf) != 0)
			return ST_PROTO_UNKNOWN;
	} else if (bpf_probe_read_user(b, sizeof(b), ubuf) != 0 &&
		   bpf_probe_read_user(b, 4, ubuf) != 0) {
		return ST_PROTO_UNKNOWN;
	}
	if (st_prefix(b, "GET ", 4) || st_prefix(b, "POST ", 5) || st_prefix(b, "PUT ", 4) ||
	    st_prefix(b, "HEAD ", 5) || st_prefix(b, "DELETE ", 7) || st_prefix(b, "PATCH ", 6) ||
	    st_prefix(b, "OPTIONS ", 8) || st_prefix(b, "CONNECT ", 8) ||
	    st_prefix(b, "TRACE ", 6) || (size >= 7 && st_prefix(b, "HTTP/1.", 7)))
		return ST_PROTO_HTTP1;
	if (size >= 8 && st_prefix(b, "PRI * HT", 8))
		return ST_PROTO_HTTP2;
	/* A server speaking first with an HTTP/2 SETTINGS frame: type 4, stream 0, length % 6 == 0. */
	if (size >= 9 && b[3] == 4 && (b[4] & ~1) == 0 && b[5] == 0 && b[6] == 0 && b[7] == 0 &&
	    b[8] == 0 && b[0] == 0) {
		__u32 len = ((__u32)(__u8)b[1] << 8) | (__u8)b[2];
		if (len % 6 == 0)
			return ST_PROTO_HTTP2;
	}
	/* A TLS record: handshake at a connection's start, any record type mid-stream. */
	if (b[0] >= 0x14 && b[0] <= 0x17 && b[1] == 0x03 && (__u8)b[2] <= 0x04)
		return ST_PROTO_TLS;
	return ST_PROTO_OTHER;
}
#endif
