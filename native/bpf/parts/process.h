/* Process start and end: exec tells user space to look for OpenSSL in the new image, exit lets
 * it drop the process's connections and probes. */
#ifndef SIDETRACE_PART_PROCESS_H
#define SIDETRACE_PART_PROCESS_H
#include "../common/emit.h"

static __always_inline int st_proc_event(__u32 type)
{
	struct st_proc_event *ev = st_reserve(sizeof(*ev));
	if (!ev)
		return 0;
	st_fill_header(&ev->h, type, -1, 0);
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
	if (type == ST_EV_EXEC)
		st_submit_now(ev);
	else
		st_submit(ev);
	return 0;
}

SEC("tracepoint/sched/sched_process_exec")
int st_process_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	if (!st_config())
		return 0;
	return st_proc_event(ST_EV_EXEC);
}

SEC("tracepoint/sched/sched_process_exit")
int st_process_exit(void *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	/* Threads exit too; only the group leader's exit ends the process. */
	if ((__u32)pid_tgid != (pid_tgid >> 32) || !st_config())
		return 0;
	return st_proc_event(ST_EV_EXIT);
}
#endif
