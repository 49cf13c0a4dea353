/* Checks capabilities, BTF, tracefs and uprobe support, and names whatever is missing, so a
 * DaemonSet without CAP_BPF says so instead of failing with EPERM deep inside libbpf. */
#include "preflight.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CAP_SYS_ADMIN_BIT 21
#define CAP_PERFMON_BIT 38
#define CAP_BPF_BIT 39

static unsigned long long effective_caps(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	unsigned long long caps = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "CapEff:", 7) == 0) {
			caps = strtoull(line + 7, NULL, 16);
			break;
		}
	}
	fclose(f);
	return caps;
}

static const char *tracefs_events(void)
{
	static const char *candidates[] = { "/sys/kernel/tracing/events",
					    "/sys/kernel/debug/tracing/events" };
	for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++)
		if (access(candidates[i], R_OK) == 0)
			return candidates[i];
	return NULL;
}

int st_preflight(int want_tls, const char **code, char *msg, size_t msg_len)
{
	unsigned long long caps = effective_caps();
	int has = (caps >> CAP_SYS_ADMIN_BIT) & 1 ||
		  (((caps >> CAP_BPF_BIT) & 1) && ((caps >> CAP_PERFMON_BIT) & 1));
	if (!has) {
		*code = "ST_AGENT_MISSING_CAPABILITY";
		snprintf(msg, msg_len,
			 "ST_AGENT_MISSING_CAPABILITY: the agent needs CAP_BPF and CAP_PERFMON (or "
			 "CAP_SYS_ADMIN); effective set is 0x%llx (CAP_BPF %s, CAP_PERFMON %s)",
			 caps, (caps >> CAP_BPF_BIT) & 1 ? "present" : "missing",
			 (caps >> CAP_PERFMON_BIT) & 1 ? "present" : "missing");
		return -1;
	}
	if (want_tls && !((caps >> CAP_SYS_ADMIN_BIT) & 1)) {
		/* perf_uprobe_event_init() has required CAP_SYS_ADMIN again since the 2025 fix
		 * ("require CAP_SYS_ADMIN for uprobes"); CAP_PERFMON is not enough. */
		*code = "ST_AGENT_MISSING_CAPABILITY";
		snprintf(msg, msg_len,
			 "ST_AGENT_MISSING_CAPABILITY: TLS capture attaches uprobes, which the kernel "
			 "allows only with CAP_SYS_ADMIN (CAP_PERFMON is not enough); grant it, or open "
			 "with tls: false");
		return -1;
	}
	if (access("/sys/kernel/btf/vmlinux", R_OK) != 0) {
		*code = "ST_AGENT_NO_BTF";
		snprintf(msg, msg_len,
			 "ST_AGENT_NO_BTF: /sys/kernel/btf/vmlinux is not readable; the kernel needs "
			 "CONFIG_DEBUG_INFO_BTF=y (and the DaemonSet must mount /sys/kernel/btf)");
		return -1;
	}
	const char *events = tracefs_events();
	if (!events) {
		*code = "ST_AGENT_NO_TRACEFS";
		snprintf(msg, msg_len,
			 "ST_AGENT_NO_TRACEFS: neither /sys/kernel/tracing nor /sys/kernel/debug/tracing "
			 "is mounted (mount -t tracefs nodev /sys/kernel/tracing)");
		return -1;
	}
	char path[256];
	/* The programs attach to the raw sys_enter/sys_exit tracepoints, not the per-syscall ones. */
	snprintf(path, sizeof(path), "%s/raw_syscalls/sys_enter", events);
	if (access(path, R_OK) != 0) {
		*code = "ST_AGENT_NO_SYSCALL_TRACEPOINTS";
		snprintf(msg, msg_len,
			 "ST_AGENT_NO_SYSCALL_TRACEPOINTS: %s is missing; the kernel needs "
			 "CONFIG_HAVE_SYSCALL_TRACEPOINTS (and tracing)",
			 path);
		return -1;
	}
	if (want_tls && access("/sys/bus/event_source/devices/uprobe/type", R_OK) != 0) {
		*code = "ST_AGENT_NO_UPROBES";
		snprintf(msg, msg_len,
			 "ST_AGENT_NO_UPROBES: /sys/bus/event_source/devices/uprobe is missing; TLS "
			 "capture needs CONFIG_UPROBE_EVENTS=y (open with tls: false to run without it)");
		return -1;
	}
	return 0;
}
