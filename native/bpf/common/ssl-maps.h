/* State for tying TLS plaintext to a socket:
 *  - st_ssl_calls: the SSL_* call a thread is in (args saved at entry for the uretprobe); the
 *    socket syscalls the library makes inside it (socket BIO: curl, python, nginx) name its fd;
 *  - st_ssl_fds: what each SSL object's fd turned out to be, for calls that make no syscall;
 *  - st_tls_last_read: the last ciphertext read per thread, for libraries that feed OpenSSL
 *    through memory BIOs (node reads the socket, then calls SSL_read on that data);
 *  - st_tls_pending_write: an SSL_write whose fd is not known yet; with memory BIOs the
 *    thread's next socket write carries its ciphertext (node: SSL_write, then writev). */
#ifndef SIDETRACE_SSL_MAPS_H
#define SIDETRACE_SSL_MAPS_H
#include "defs.h"

struct st_ssl_call {
	__u64 ssl;
	__u64 buf;
	__u64 out_len_ptr; /* size_t * of the _ex variants, 0 otherwise */
	__s32 fd;          /* socket fd used inside the call, -1 until seen */
	__u8 direction;
	__u8 reserved[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct st_ssl_call);
} st_ssl_calls SEC(".maps");

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

struct st_last_read {
	__s32 fd;
	__u32 reserved;
	__u64 ts_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct st_last_read);
} st_tls_last_read SEC(".maps");

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
