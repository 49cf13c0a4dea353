/* Per-CPU counters (struct st_counters). Atomic adds: programs on one CPU can preempt each other,
 * and the loss accounting must be exact. */
#ifndef SIDETRACE_COUNTERS_MAP_H
#define SIDETRACE_COUNTERS_MAP_H
#include "defs.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct st_counters);
} st_counters_map SEC(".maps");

static __always_inline struct st_counters *st_counters(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&st_counters_map, &zero);
}

#define ST_COUNT(field, n)                                   \
	do {                                                 \
		struct st_counters *__k = st_counters();     \
		if (__k)                                     \
			__sync_fetch_and_add(&__k->field, (n)); \
	} while (0)
#endif
