/* Payload syscalls: arguments saved at enter, bytes read at exit (after a read the buffer holds
 * them; after a write the return value says how many went). Called from the syscall dispatch
 * (syscalls.h). */
#ifndef SIDETRACE_PART_DATA_SYSCALLS_H
#define SIDETRACE_PART_DATA_SYSCALLS_H
#include "../common/emit.h"
#include "../common/ssl-maps.h"
#include "../common/task-map.h"

#define ST_PENDING_WRITE_MAX_AGE_NS 1000000000ULL

/* Memory-BIO TLS (node): an SSL_write that made no syscall belongs to the socket its thread
 * writes ciphertext to next; its plaintext was copied at SSL_write's return. */
static __always_inline void st_flush_pending_write(struct st_conn *c, __s32 fd, __u64 pid_tgid)
{
	struct st_data_event *pw = bpf_map_lookup_elem(&st_tls_pending_write, &pid_tgid);
	if (!pw)
		return;
	if (bpf_ktime_get_ns() - pw->h.ts_ns > ST_PENDING_WRITE_MAX_AGE_NS) {
		ST_COUNT(tls_unattributed, 1);
		bpf_map_delete_elem(&st_tls_pending_write, &pid_tgid);
		return;
	}
	struct st_ssl_key k = { .ssl = pw->pos, .tgid = pid_tgid >> 32 };
	st_ssl_fd_set(&k, fd);
	__u64 size = pw->size;
	__u64 copied = pw->len;
	if (copied > size)
		copied = size;
	__u64 meta = st_meta(fd, ST_DIR_EGRESS, ST_SRC_TLS);
	/* Global functions take scalars, not map pointers: the copy's address goes through a map
	 * slot, which the verifier does not track, and comes back as a plain number. */
	struct st_scratch *s = st_scratch();
	if (!s)
		return;
	*(volatile __u64 *)&s->loop.ubuf = (__u64)pw->data;
	__u64 kaddr = *(volatile __u64 *)&s->loop.ubuf;
	if (st_wants_payload(c, meta | ST_META_KERNEL, kaddr, copied)) {
		st_emit_chunks(c, meta | ST_META_KERNEL, kaddr, copied);
		if (size > copied)
			st_emit_chunks(c, meta, 0, size - copied);
	} else {
		c->pos[ST_SRC_TLS * 2 + ST_DIR_EGRESS] += size;
	}
	bpf_map_delete_elem(&st_tls_pending_write, &pid_tgid);
}

static __always_inline void st_io_enter(__s32 fd, __u8 kind, __u8 dir, __u64 ptr, __u64 count)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 key = st_conn_key(pid_tgid >> 32, fd);
	struct st_conn *c = bpf_map_lookup_elem(&st_conn_map, &key);
	if (!c) {
		/* A socket that existed before the agent started, or arrived by fd passing. */
		struct sock *sk = st_tcp_sock_of_fd(fd);
		if (!sk)
			return;
		c = st_conn_open(fd, ST_ROLE_UNKNOWN, sk);
		if (!c)
			return;
	}
	if (c->skip) {
		ST_COUNT(skipped_calls, 1);
		return;
	}
	struct st_task *t = st_task(1);
	if (!t)
		return;
	/* Inside SSL_read/SSL_write, the library's own socket call names the SSL object's fd. */
	if (t->ssl.ssl) {
		if (t->ssl.fd < 0)
			t->ssl.fd = fd;
	} else if (dir == ST_DIR_EGRESS && c->proto == ST_PROTO_TLS) {
		st_flush_pending_write(c, fd, pid_tgid);
	}
	t->io.ptr = ptr;
	t->io.count = count;
	t->io.fd = fd;
	t->io.kind = kind;
	t->io.direction = dir;
}

static __always_inline void st_io_exit(struct st_task *t, struct st_io_args *a, long ret)
{
	if (ret <= 0)
		return;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 key = st_conn_key(pid_tgid >> 32, a->fd);
	struct st_conn *c = bpf_map_lookup_elem(&st_conn_map, &key);
	if (!c || c->skip)
		return;
	__u64 meta = st_meta(a->fd, a->direction, ST_SRC_SYSCALL);
	__u64 moved = ret;
	if (a->kind == ST_IO_BUF) {
		st_data(c, a->fd, a->direction, ST_SRC_SYSCALL, a->ptr, moved);
	} else if (a->kind == ST_IO_IOV) {
		st_emit_iov(c, meta, a->ptr, a->count, moved);
	} else if (a->kind == ST_IO_MSG) {
		struct user_msghdr msg = {};
		if (bpf_probe_read_user(&msg, sizeof(msg), (const void *)a->ptr) == 0)
			st_emit_iov(c, meta, (__u64)msg.msg_iov, msg.msg_iovlen, moved);
	} else {
		/* ret counts messages; each mmsghdr says how many bytes it moved. */
		moved = 0;
		for (int i = 0; i < ST_MAX_MMSG; i++) {
			if (i >= ret)
				break;
			struct mmsghdr m = {};
			if (bpf_probe_read_user(&m, sizeof(m),
						(const void *)(a->ptr + i * sizeof(m))) != 0)
				break;
			st_emit_iov(c, meta, (__u64)m.msg_hdr.msg_iov, m.msg_hdr.msg_iovlen, m.msg_len);
			moved += m.msg_len;
		}
	}
	if (a->direction == ST_DIR_EGRESS) {
		c->bytes_sent += moved;
	} else {
		c->bytes_received += moved;
		/* Memory-BIO TLS (node): ciphertext read outside any SSL call is what the thread's next
		 * SSL_read decrypts, which ties that SSL object to this fd. */
		if (c->proto == ST_PROTO_TLS && !t->ssl.ssl) {
			t->last_read.fd = a->fd;
			t->last_read.ts_ns = bpf_ktime_get_ns();
		}
	}
}
#endif
