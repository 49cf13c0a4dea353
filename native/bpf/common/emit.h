/* Building the records: a connection's open and close, and its payload split into data events
 * of at most the configured chunk size, each with its stream position. */
#ifndef SIDETRACE_EMIT_H
#define SIDETRACE_EMIT_H
#include "defs.h"
#include "config-map.h"
#include "counters-map.h"
#include "events-ringbuf.h"
#include "scratch-map.h"
#include "conn-map.h"
#include "skip-maps.h"
#include "sock.h"
#include "infer.h"

/* Starts tracking fd (role known at connect/accept exit, UNKNOWN when first seen in a data call)
 * and emits its open record; skipped uids/ports are remembered so later calls stop early. */
static __always_inline struct st_conn *st_conn_open(__s32 fd, __u8 role, struct sock *sk)
{
	__u64 key = st_conn_key(bpf_get_current_pid_tgid() >> 32, fd);
	struct st_conn c = {};
	c.conn_id = st_next_conn_id();
	c.role = role;
	c.tries = role == ST_ROLE_UNKNOWN ? ST_MIDSTREAM_TRIES : 1;
	c.tls_tries = c.tries;
	__u16 lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	__u16 rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	c.skip = st_skip_uid() || st_skip_process() || st_skip_port(lport) || st_skip_port(rport);
	c.sk = (__u64)sk;
	bpf_map_update_elem(&st_conn_map, &key, &c, BPF_ANY);
	bpf_map_update_elem(&st_sock_conn_map, &c.sk, &key, BPF_ANY);
	if (!c.skip) {
		ST_COUNT(conns_opened, 1);
		struct st_open_event *ev = st_reserve(sizeof(*ev));
		if (ev) {
			st_fill_header(&ev->h, ST_EV_OPEN, fd, c.conn_id);
			ev->role = role;
			ev->reserved = 0;
			__builtin_memset(ev->local_addr, 0, sizeof(ev->local_addr));
			__builtin_memset(ev->remote_addr, 0, sizeof(ev->remote_addr));
			st_fill_tuple(ev, sk);
			bpf_get_current_comm(ev->comm, sizeof(ev->comm));
			st_submit(ev);
		}
	}
	return bpf_map_lookup_elem(&st_conn_map, &key);
}

static __always_inline void st_conn_close(__s32 fd)
{
	__u64 key = st_conn_key(bpf_get_current_pid_tgid() >> 32, fd);
	struct st_conn *c = bpf_map_lookup_elem(&st_conn_map, &key);
	if (!c)
		return;
	if (!c->skip) {
		struct st_close_event *ev = st_reserve(sizeof(*ev));
		if (ev) {
			st_fill_header(&ev->h, ST_EV_CLOSE, fd, c->conn_id);
			ev->bytes_sent = c->bytes_sent;
			ev->bytes_received = c->bytes_received;
			st_submit(ev);
		}
	}
	bpf_map_delete_elem(&st_sock_conn_map, &c->sk);
	bpf_map_delete_elem(&st_conn_map, &key);
}

/* meta packs fd (low 32 bits), direction (bits 32..39), source (bits 40..47) and whether the
 * bytes are kernel memory (bit 48): global BPF functions take at most five arguments. */
#define ST_META_KERNEL (1ULL << 48)
static __always_inline __u64 st_meta(__s32 fd, __u8 dir, __u8 src)
{
	return (__u64)(__u32)fd | ((__u64)dir << 32) | ((__u64)src << 40);
}

/* The i-th data event of a call. */
static __always_inline long st_chunk_emit(__u64 i)
{
	struct st_scratch *s = st_scratch();
	if (!s)
		return 1;
	struct st_chunk_loop *l = &s->loop;
	struct st_data_event *ev = &s->ev;
	__u64 done = l->done;
	if (done >= l->size)
		return 1;
	__u64 remaining = l->size - done;
	__u64 copy = remaining < l->chunk ? remaining : l->chunk;
	__u64 left = l->budget > done ? l->budget - done : 0;
	if (copy > left)
		copy = left;
	/* The last event a call may send covers everything that is left. */
	__u64 n = (done + copy >= l->budget || i == ST_MAX_CHUNKS_PER_CALL - 1) ? remaining : copy;
	__u64 len = copy;
	/* Clamp in a form clang cannot move away from the helper call the verifier checks. */
	asm volatile("if %[len] <= %[max] goto +1; %[len] = %[max];"
		     : [len] "+r"(len)
		     : [max] "i"(ST_MAX_CHUNK));
	long err = 0;
	if (len && l->kernel)
		err = bpf_probe_read_kernel(ev->data, len, (const void *)(l->ubuf + done));
	else if (len)
		err = bpf_probe_read_user(ev->data, len, (const void *)(l->ubuf + done));
	if (err)
		len = 0; /* paged out: positions still advance, the parser resynchronises */
	ev->pos = l->base + done;
	ev->size = n;
	ev->len = len;
	st_output(ev, ST_DATA_HEADER_SIZE + len);
	ST_COUNT(bytes_captured, len);
	if (n > len)
		ST_COUNT(bytes_truncated, n - len);
	l->done = done + n;
	return done + n >= l->size;
}

/* Events after the first, one per iteration; bpf_loop keeps the verifier's work independent of
 * the count. */
static long st_chunk_next(__u64 i, void *unused)
{
	return st_chunk_emit(i + 1);
}

/* Emits [ubuf, ubuf + size) as data events and advances the stream position by size. A global
 * function: verified once, not once per call site. ubuf 0 emits one empty event covering size
 * bytes, so a stream's positions stay continuous when its bytes cannot be read. */
__noinline int st_emit_chunks(struct st_conn *c, __u64 meta, __u64 ubuf, __u64 size)
{
	if (!c)
		return 0;
	struct st_config *cfg = st_config();
	struct st_scratch *s = st_scratch();
	if (!cfg || !s)
		return 0;
	__u8 dir = (meta >> 32) & 1;
	__u8 src = (meta >> 40) & 1;
	__u32 idx = (src * 2 + dir) & 3;
	struct st_chunk_loop *l = &s->loop;
	l->ubuf = ubuf;
	l->size = size;
	l->base = c->pos[idx];
	l->chunk = cfg->chunk_bytes;
	if (l->chunk == 0 || l->chunk > ST_MAX_CHUNK)
		l->chunk = ST_MAX_CHUNK;
	l->budget = ubuf ? cfg->max_bytes_per_call : 0;
	l->done = 0;
	l->kernel = (meta & ST_META_KERNEL) != 0;
	c->pos[idx] += size;
	struct st_data_event *ev = &s->ev;
	st_fill_header(&ev->h, ST_EV_DATA, (__s32)(__u32)meta, c->conn_id);
	ev->direction = dir;
	ev->source = src;
	ev->reserved = 0;
	/* Most calls fit one event: it goes out without setting up a loop. */
	if (!st_chunk_emit(0))
		bpf_loop(ST_MAX_CHUNKS_PER_CALL - 1, st_chunk_next, 0, 0);
	return 0;
}

/* Whether this connection's bytes from src are copied; infers the protocol from its first bytes
 * while still unknown. Global, so its many branches are verified once, not per loop iteration. */
__noinline int st_wants_payload(struct st_conn *c, __u64 meta, __u64 ubuf, __u64 size)
{
	if (!c)
		return 0;
	__u8 src = (meta >> 40) & 1;
	__u8 proto = src == ST_SRC_TLS ? c->tls_proto : c->proto;
	__u8 tries = src == ST_SRC_TLS ? c->tls_tries : c->tries;
	if (proto == ST_PROTO_UNKNOWN && tries > 0 && size > 0) {
		__u8 p = st_infer((const void *)ubuf, size, (meta & ST_META_KERNEL) != 0);
		if (p == ST_PROTO_OTHER || (p == ST_PROTO_TLS && src == ST_SRC_TLS)) {
			tries--;
			if (tries == 0)
				proto = ST_PROTO_OTHER;
		} else if (p != ST_PROTO_UNKNOWN) {
			proto = p;
		}
		if (src == ST_SRC_TLS) {
			c->tls_proto = proto;
			c->tls_tries = tries;
		} else {
			c->proto = proto;
			c->tries = tries;
		}
	}
	return proto == ST_PROTO_HTTP1 || proto == ST_PROTO_HTTP2;
}

static __always_inline void st_data(struct st_conn *c, __s32 fd, __u8 dir, __u8 src, __u64 ubuf,
				    __u64 size)
{
	__u64 meta = st_meta(fd, dir, src);
	if (st_wants_payload(c, meta, ubuf, size))
		st_emit_chunks(c, meta, ubuf, size);
	else
		c->pos[(src * 2 + dir) & 3] += size;
}

/* Vectored calls up to this size are gathered into one event; a power of two, so an offset
 * below it plus a length up to it stays inside the event's data for the verifier. */
#define ST_GATHER_MAX 8192

/* A small vectored call (an HTTP response's header and body iovecs) as one data event: one ring
 * output instead of one per iovec. The event's first len bytes are copied; an iovec that cannot
 * be read ends the copy there, and the rest is covered without bytes, as a truncation. */
static __always_inline void st_gather_iov(struct st_conn *c, struct st_scratch *s, __u64 meta,
					  __u64 iovp, __u64 iovcnt, __u64 total)
{
	__u8 dir = (meta >> 32) & 1;
	__u8 src = (meta >> 40) & 1;
	__u32 idx = (src * 2 + dir) & 3;
	struct st_data_event *ev = &s->ev;
	__u64 fill = 0;
	int wants = -1;
	for (int i = 0; i < ST_MAX_IOV; i++) {
		if (fill >= total || i >= iovcnt)
			break;
		struct iovec iov = {};
		if (bpf_probe_read_user(&iov, sizeof(iov), (const void *)(iovp + i * sizeof(iov))) != 0)
			break;
		__u64 n = iov.iov_len < total - fill ? iov.iov_len : total - fill;
		if (n == 0)
			continue;
		if (wants < 0)
			wants = st_wants_payload(c, meta, (__u64)iov.iov_base, n);
		if (!wants)
			break;
		__u64 off = fill & (ST_GATHER_MAX - 1);
		asm volatile("if %[n] <= %[max] goto +1; %[n] = %[max];"
			     : [n] "+r"(n)
			     : [max] "i"(ST_GATHER_MAX));
		if (bpf_probe_read_user(ev->data + off, n, iov.iov_base) != 0)
			break;
		fill += n;
	}
	if (wants <= 0) {
		c->pos[idx] += total;
		return;
	}
	st_fill_header(&ev->h, ST_EV_DATA, (__s32)(__u32)meta, c->conn_id);
	ev->direction = dir;
	ev->source = src;
	ev->reserved = 0;
	ev->pos = c->pos[idx];
	ev->size = total;
	__u64 len = fill;
	asm volatile("if %[len] <= %[max] goto +1; %[len] = %[max];"
		     : [len] "+r"(len)
		     : [max] "i"(ST_GATHER_MAX));
	ev->len = len;
	c->pos[idx] += total;
	st_output(ev, ST_DATA_HEADER_SIZE + len);
	ST_COUNT(bytes_captured, len);
	if (total > len)
		ST_COUNT(bytes_truncated, total - len);
}

/* The first `total` bytes spread over an iovec array. */
__noinline int st_emit_iov(struct st_conn *c, __u64 meta, __u64 iovp, __u64 iovcnt, __u64 total)
{
	if (!c)
		return 0;
	struct st_config *cfg = st_config();
	struct st_scratch *s = st_scratch();
	if (cfg && s && total <= ST_GATHER_MAX && total <= cfg->chunk_bytes &&
	    total <= cfg->max_bytes_per_call) {
		st_gather_iov(c, s, meta, iovp, iovcnt, total);
		return 0;
	}
	__u8 dir = (meta >> 32) & 1;
	__u8 src = (meta >> 40) & 1;
	__u64 remaining = total;
	int wants = -1;
	for (int i = 0; i < ST_MAX_IOV; i++) {
		if (remaining == 0 || i >= iovcnt)
			break;
		struct iovec iov = {};
		if (bpf_probe_read_user(&iov, sizeof(iov), (const void *)(iovp + i * sizeof(iov))) != 0)
			break;
		__u64 n = iov.iov_len < remaining ? iov.iov_len : remaining;
		if (n == 0)
			continue;
		if (wants < 0)
			wants = st_wants_payload(c, meta, (__u64)iov.iov_base, n);
		if (wants)
			st_emit_chunks(c, meta, (__u64)iov.iov_base, n);
		else
			c->pos[(src * 2 + dir) & 3] += n;
		remaining -= n;
	}
	if (remaining) {
		if (wants > 0)
			st_emit_chunks(c, meta, 0, remaining);
		else
			c->pos[(src * 2 + dir) & 3] += remaining;
	}
	return 0;
}
#endif
