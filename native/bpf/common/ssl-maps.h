/* State for tying TLS plaintext to a socket (with the per-thread SSL call and last ciphertext
 * read in task-map.h):
 *  - st_ssl_fds: what each SSL object's fd turned out to be, for calls that make no syscall;
 *  - st_tls_pending_write: an SSL_write whose fd is not known yet; with memory BIOs the
 *    thread's next socket write carries its ciphertext (node: SSL_write, then writev). */
#ifndef SIDETRACE_SSL_MAPS_H
#define SIDETRACE_SSL_MAPS_H
#include "defs.h"

struct st_ssl_key {
	__u64 ssl;
	__u32 tgid;
	__u32 reserved;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct st_ssl_key);
	__type(value, __s32);
} st_ssl_fds SEC(".maps");

/* Records fd as ssl's socket; an update only when it changed, since most calls confirm it. */
static __always_inline void st_ssl_fd_set(struct st_ssl_key *k, __s32 fd)
{
	__s32 *known = bpf_map_lookup_elem(&st_ssl_fds, k);
	if (!known || *known != fd)
		bpf_map_update_elem(&st_ssl_fds, k, &fd, BPF_ANY);
}

/* The plaintext itself is copied (one chunk; the rest is counted as truncated): by the time the
 * socket write comes the library has reused the buffer. Value: a data event whose pos holds the
 * SSL pointer, size the SSL_write length, len the bytes copied, h.ts_ns when. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 256);
	__type(key, __u64);
	__type(value, struct st_data_event);
} st_tls_pending_write SEC(".maps");
#endif
