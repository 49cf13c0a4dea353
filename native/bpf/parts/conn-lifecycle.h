/* Connection lifecycle from the connect/accept exits and close: a connection that opens,
 * exchanges one request and closes within a millisecond still yields open, data, close. */
#ifndef SIDETRACE_PART_CONN_LIFECYCLE_H
#define SIDETRACE_PART_CONN_LIFECYCLE_H
#include "../common/emit.h"
#include "../common/io-args-map.h"

static __always_inline int st_remember(__s32 fd, __u8 kind)
{
	if (!st_config())
		return 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct st_io_args a = { .fd = fd, .kind = kind };
	bpf_map_update_elem(&st_io_args_map, &pid_tgid, &a, BPF_ANY);
	return 0;
}

static __always_inline int st_opened(long ret, __u8 kind)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct st_io_args *a = bpf_map_lookup_elem(&st_io_args_map, &pid_tgid);
	if (!a)
		return 0;
	__s32 fd = a->fd;
	__u8 saved = a->kind;
	bpf_map_delete_elem(&st_io_args_map, &pid_tgid);
	if (saved != kind || !st_config())
		return 0;
	if (kind == ST_IO_CONNECT) {
		/* Non-blocking connects report EINPROGRESS; the local port is already bound. */
		if (ret != 0 && ret != -ST_EINPROGRESS)
			return 0;
	} else {
		if (ret < 0)
			return 0;
		fd = ret;
	}
	struct sock *sk = st_tcp_sock_of_fd(fd);
	if (sk)
		st_conn_open(fd, kind == ST_IO_CONNECT ? ST_ROLE_CLIENT : ST_ROLE_SERVER, sk);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_connect")
int st_enter_connect(struct trace_event_raw_sys_enter *ctx)
{
	return st_remember(ctx->args[0], ST_IO_CONNECT);
}

SEC("tracepoint/syscalls/sys_exit_connect")
int st_exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	return st_opened(ctx->ret, ST_IO_CONNECT);
}

SEC("tracepoint/syscalls/sys_enter_accept")
int st_enter_accept(struct trace_event_raw_sys_enter *ctx)
{
	return st_remember(ctx->args[0], ST_IO_ACCEPT);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int st_exit_accept(struct trace_event_raw_sys_exit *ctx)
{
	return st_opened(ctx->ret, ST_IO_ACCEPT);
}

SEC("tracepoint/syscalls/sys_enter_accept4")
int st_enter_accept4(struct trace_event_raw_sys_enter *ctx)
{
	return st_remember(ctx->args[0], ST_IO_ACCEPT);
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int st_exit_accept4(struct trace_event_raw_sys_exit *ctx)
{
	return st_opened(ctx->ret, ST_IO_ACCEPT);
}

SEC("tracepoint/syscalls/sys_enter_close")
int st_enter_close(struct trace_event_raw_sys_enter *ctx)
{
	if (st_config())
		st_conn_close(ctx->args[0]);
	return 0;
}
#endif
