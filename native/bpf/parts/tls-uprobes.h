/* OpenSSL 1.1/3 plaintext: SSL_read, SSL_write and their _ex forms, or the internal function both
 * forms call (ssl_read_internal/ssl_write_internal, with the _ex signature) where the addon finds
 * it (addon/ssl-entry.c). Arguments are saved at entry by thread, the plaintext is emitted at
 * return with the real length, on the socket the call used. Attached per library file by the
 * addon, so every process mapping it is covered. */
#ifndef SIDETRACE_PART_TLS_UPROBES_H
#define SIDETRACE_PART_TLS_UPROBES_H
#include "../common/emit.h"
#include "../common/ssl-maps.h"
#include "../common/task-map.h"

/* A memory-BIO read must be this recent to name the SSL object's fd. */
#define ST_LAST_READ_MAX_AGE_NS 1000000000ULL

static __always_inline int st_ssl_enter(__u64 ssl, __u64 buf, __u64 out_len_ptr, __u8 dir)
{
	if (!st_config())
		return 0;
	struct st_task *t = st_task(1);
	if (!t)
		return 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (dir == ST_DIR_INGRESS && t->last_read.ts_ns) {
		if (bpf_ktime_get_ns() - t->last_read.ts_ns < ST_LAST_READ_MAX_AGE_NS) {
			struct st_ssl_key k = { .ssl = ssl, .tgid = pid_tgid >> 32 };
			st_ssl_fd_set(&k, t->last_read.fd);
		}
		t->last_read.ts_ns = 0;
	}
	t->ssl.ssl = ssl;
	t->ssl.buf = buf;
	t->ssl.out_len_ptr = out_len_ptr;
	t->ssl.fd = -1;
	t->ssl.direction = dir;
	return 0;
}

static __always_inline int st_ssl_return(long ret)
{
	struct st_task *t = st_task(0);
	if (!t || !t->ssl.ssl)
		return 0;
	struct st_ssl_call call = t->ssl;
	t->ssl.ssl = 0;
	if (!st_config())
		return 0;
	__s64 len = (int)ret;
	if (call.out_len_ptr) {
		__u64 n = 0;
		/* _ex forms return 1 on success, the internal functions any positive value. */
		if ((int)ret <= 0 || bpf_probe_read_user(&n, sizeof(n), (const void *)call.out_len_ptr))
			n = 0;
		len = n;
	}
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct st_ssl_key k = { .ssl = call.ssl, .tgid = tgid };
	__s32 fd = call.fd;
	if (fd >= 0) {
		st_ssl_fd_set(&k, fd);
	} else {
		__s32 *known = bpf_map_lookup_elem(&st_ssl_fds, &k);
		if (known)
			fd = *known;
	}
	if (len <= 0)
		return 0;
	if (fd < 0) {
		struct st_scratch *s = st_scratch();
		if (call.direction == ST_DIR_EGRESS && s) {
			/* Emitted by the thread's next socket write (data-syscalls.h). */
			struct st_data_event *pw = &s->ev;
			pw->pos = call.ssl;
			pw->size = len;
			pw->h.ts_ns = bpf_ktime_get_ns();
			__u64 n = len;
			asm volatile("if %[n] <= %[max] goto +1; %[n] = %[max];"
				     : [n] "+r"(n)
				     : [max] "i"(ST_MAX_CHUNK));
			if (bpf_probe_read_user(pw->data, n, (const void *)call.buf) != 0)
				n = 0;
			pw->len = n;
			if (bpf_map_lookup_elem(&st_tls_pending_write, &pid_tgid))
				ST_COUNT(tls_unattributed, 1); /* the previous one never found its socket */
			bpf_map_update_elem(&st_tls_pending_write, &pid_tgid, pw, BPF_ANY);
		} else {
			ST_COUNT(tls_unattributed, 1);
		}
		return 0;
	}
	__u64 key = st_conn_key(tgid, fd);
	struct st_conn *c = bpf_map_lookup_elem(&st_conn_map, &key);
	if (!c) {
		struct sock *sk = st_tcp_sock_of_fd(fd);
		if (!sk) {
			ST_COUNT(tls_unattributed, 1);
			return 0;
		}
		c = st_conn_open(fd, ST_ROLE_UNKNOWN, sk);
		if (!c)
			return 0;
	}
	if (c->skip) {
		ST_COUNT(skipped_calls, 1);
		return 0;
	}
	st_data(c, fd, call.direction, ST_SRC_TLS, call.buf, len);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(st_ssl_write_enter, void *ssl, const void *buf, int num)
{
	return st_ssl_enter((__u64)ssl, (__u64)buf, 0, ST_DIR_EGRESS);
}

SEC("uprobe")
int BPF_KPROBE(st_ssl_read_enter, void *ssl, void *buf, int num)
{
	return st_ssl_enter((__u64)ssl, (__u64)buf, 0, ST_DIR_INGRESS);
}

SEC("uprobe")
int BPF_KPROBE(st_ssl_write_ex_enter, void *ssl, const void *buf, size_t num, size_t *written)
{
	return st_ssl_enter((__u64)ssl, (__u64)buf, (__u64)written, ST_DIR_EGRESS);
}

SEC("uprobe")
int BPF_KPROBE(st_ssl_read_ex_enter, void *ssl, void *buf, size_t num, size_t *readbytes)
{
	return st_ssl_enter((__u64)ssl, (__u64)buf, (__u64)readbytes, ST_DIR_INGRESS);
}

/* One return program serves all four: the entry saved what differs. */
SEC("uretprobe")
int BPF_KRETPROBE(st_ssl_exit, long ret)
{
	return st_ssl_return(ret);
}
#endif
