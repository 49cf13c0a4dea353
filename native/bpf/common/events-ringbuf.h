/* The ring buffer every record goes through; its size is set by the loader before load. Every
 * attempt and every failed reservation is counted, so user space can prove what was lost. */
#ifndef SIDETRACE_EVENTS_RINGBUF_H
#define SIDETRACE_EVENTS_RINGBUF_H
#include "defs.h"
#include "counters-map.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * 1024 * 1024);
} st_events SEC(".maps");

/* Waking the reader for every record costs more than the record: wake it only once this much
 * is waiting; it also polls every ST_READER_POLL_MS (addon) for whatever is below. Each wakeup
 * ends in a burst of work on the agent's JS thread, and fewer, larger bursts cost it less per
 * record: at 10k req/s (~15 MB/s of records) 512 KiB instead of 64 KiB means ~30 instead of
 * ~200 bursts a second and ~18% less agent CPU (bench/RESULTS.md). The ring (8 MiB) still has
 * 15 times this left when the reader is woken. */
#define ST_WAKEUP_BYTES (512 * 1024)

static __always_inline __u64 st_wakeup_flag(void)
{
	return bpf_ringbuf_query(&st_events, BPF_RB_AVAIL_DATA) >= ST_WAKEUP_BYTES ? BPF_RB_FORCE_WAKEUP
										   : BPF_RB_NO_WAKEUP;
}

static __always_inline void *st_reserve(__u64 size)
{
	struct st_counters *k = st_counters();
	if (k)
		__sync_fetch_and_add(&k->events_attempted, 1);
	void *rec = bpf_ringbuf_reserve(&st_events, size, 0);
	if (!rec && k)
		__sync_fetch_and_add(&k->events_dropped, 1);
	return rec;
}

static __always_inline void st_submit(void *rec)
{
	bpf_ringbuf_submit(rec, st_wakeup_flag());
}

/* For records user space must act on at once (exec: attach to the new image's OpenSSL before
 * the process gets far), whatever else is waiting. */
static __always_inline void st_submit_now(void *rec)
{
	bpf_ringbuf_submit(rec, BPF_RB_FORCE_WAKEUP);
}

/* For variable-size records built in scratch memory (data events). */
static __always_inline long st_output(void *data, __u64 size)
{
	struct st_counters *k = st_counters();
	if (k)
		__sync_fetch_and_add(&k->events_attempted, 1);
	long err = bpf_ringbuf_output(&st_events, data, size, st_wakeup_flag());
	if (err && k)
		__sync_fetch_and_add(&k->events_dropped, 1);
	return err;
}

static __always_inline void st_fill_header(struct st_event_header *h, __u32 type, __s32 fd,
					   __u64 conn_id)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	h->type = type;
	h->pid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
	h->fd = fd;
	h->ts_ns = bpf_ktime_get_ns();
	h->conn_id = conn_id;
}
#endif
