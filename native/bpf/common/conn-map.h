/* Tracked connections keyed by (tgid, fd). LRU: entries of processes that exit without closing
 * age out instead of filling the map. */
#ifndef SIDETRACE_CONN_MAP_H
#define SIDETRACE_CONN_MAP_H
#include "defs.h"

struct st_conn {
	__u64 conn_id;
	__u64 sk; /* struct sock address, to find the entry from sock tracepoints */
	/* Stream positions, indexed by source * 2 + direction. */
	__u64 pos[4];
	__u64 bytes_sent;
	__u64 bytes_received;
	__u8 role;
	__u8 proto;     /* enum st_proto of the socket bytes */
	__u8 tls_proto; /* enum st_proto of the TLS plaintext */
	__u8 skip;      /* skipped uid or port: no events at all */
	__u8 tries;     /* inference attempts left while proto is UNKNOWN */
	__u8 tls_tries;
	__u8 reserved[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct st_conn);
} st_conn_map SEC(".maps");

/* struct sock address -> st_conn_map key, for sockets closed without a close() call. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} st_sock_conn_map SEC(".maps");

/* Source of connection ids: one shared counter, atomically incremented. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} st_conn_id_map SEC(".maps");

static __always_inline __u64 st_next_conn_id(void)
{
	__u32 zero = 0;
	__u64 *next = bpf_map_lookup_elem(&st_conn_id_map, &zero);
	if (!next)
		return 0;
	return __sync_fetch_and_add(next, 1) + 1;
}
#endif
