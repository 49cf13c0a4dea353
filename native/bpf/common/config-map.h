/* The loader's settings (struct st_config), one entry. */
#ifndef SIDETRACE_CONFIG_MAP_H
#define SIDETRACE_CONFIG_MAP_H
#include "defs.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct st_config);
} st_config_map SEC(".maps");

static __always_inline struct st_config *st_config(void)
{
	__u32 zero = 0;
	struct st_config *cfg = bpf_map_lookup_elem(&st_config_map, &zero);
	if (!cfg || !cfg->enabled)
		return 0;
	return cfg;
}
#endif
