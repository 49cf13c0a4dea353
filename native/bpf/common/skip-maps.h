/* No double tracing: sockets of these uids (the sidecar proxy's), with these local/remote ports
 * (the proxy's listeners) or of these processes (the agent itself, whose span export would
 * otherwise trace itself) produce no events. Filled by the loader. */
#ifndef SIDETRACE_SKIP_MAPS_H
#define SIDETRACE_SKIP_MAPS_H
#include "defs.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u8);
} st_skip_uids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u16);
	__type(value, __u8);
} st_skip_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u8);
} st_skip_tgids SEC(".maps");

static __always_inline int st_skip_process(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	return bpf_map_lookup_elem(&st_skip_tgids, &tgid) != 0;
}

static __always_inline int st_skip_uid(void)
{
	__u32 uid = (__u32)bpf_get_current_uid_gid();
	return bpf_map_lookup_elem(&st_skip_uids, &uid) != 0;
}

static __always_inline int st_skip_port(__u16 port)
{
	return bpf_map_lookup_elem(&st_skip_ports, &port) != 0;
}
#endif
