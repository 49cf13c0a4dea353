/* Sockets closed without a close() call: when a process exits, the kernel closes its files and
 * the TCP state change happens in the exiting task. Emitting the close there keeps "open, data,
 * close" whole for clients that just exit (node's process.exit, killed processes). */
#ifndef SIDETRACE_PART_SOCK_STATE_H
#define SIDETRACE_PART_SOCK_STATE_H
#include "../common/emit.h"

#define ST_TCP_FIN_WAIT1 4
#define ST_TCP_CLOSE 7
#define ST_TCP_LAST_ACK 9
#define ST_PF_EXITING 0x00000004

SEC("tracepoint/sock/inet_sock_set_state")
int st_sock_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	int state = ctx->newstate;
	if (state != ST_TCP_FIN_WAIT1 && state != ST_TCP_LAST_ACK && state != ST_TCP_CLOSE)
		return 0;
	if (!st_config())
		return 0;
	/* A live process closing (or half-closing) goes through close(); only exits count here. */
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	if (!(BPF_CORE_READ(task, flags) & ST_PF_EXITING))
		return 0;
	__u64 sk = (__u64)ctx->skaddr;
	__u64 *key = bpf_map_lookup_elem(&st_sock_conn_map, &sk);
	if (!key)
		return 0;
	__u64 k = *key;
	if ((k >> 32) != (bpf_get_current_pid_tgid() >> 32))
		return 0;
	st_conn_close((__s32)(__u32)k);
	return 0;
}
#endif
