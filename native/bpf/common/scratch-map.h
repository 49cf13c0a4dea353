/* Per-CPU scratch space for one data event (too big for the 512-byte BPF stack) and for the
 * chunk loop's state: values loaded from a map are unknown to the verifier, so every loop
 * iteration looks the same to it and verification stays small. */
#ifndef SIDETRACE_SCRATCH_MAP_H
#define SIDETRACE_SCRATCH_MAP_H
#include "defs.h"

struct st_chunk_loop {
	__u64 ubuf;
	__u64 size;
	__u64 base;
	__u64 chunk;
	__u64 budget;
	__u64 done;
	__u64 kernel; /* ubuf is kernel memory (a copy kept in a map), not the process's */
};

struct st_scratch {
	struct st_chunk_loop loop;
	struct st_data_event ev;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct st_scratch);
} st_scratch_map SEC(".maps");

static __always_inline struct st_scratch *st_scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&st_scratch_map, &zero);
}
#endif
