/* The syscalls the agent traces, by number, for the raw sys_enter/sys_exit tracepoints: one
 * program per direction sees every syscall of every process and returns at once for the others,
 * which costs less in the traced process than the per-syscall tracepoints (each hit of those
 * builds a perf record before the program runs). Numbers are the native ABI's; compat (32-bit)
 * syscalls are ignored, as the per-syscall tracepoints ignore them. */
#ifndef SIDETRACE_SYSCALLS_H
#define SIDETRACE_SYSCALLS_H
#include "defs.h"

#if defined(__TARGET_ARCH_x86)
#define ST_NR_READ 0
#define ST_NR_WRITE 1
#define ST_NR_CLOSE 3
#define ST_NR_READV 19
#define ST_NR_WRITEV 20
#define ST_NR_CONNECT 42
#define ST_NR_ACCEPT 43
#define ST_NR_SENDTO 44
#define ST_NR_RECVFROM 45
#define ST_NR_SENDMSG 46
#define ST_NR_RECVMSG 47
#define ST_NR_ACCEPT4 288
#define ST_NR_RECVMMSG 299
#define ST_NR_SENDMMSG 307
#define ST_TS_COMPAT 0x0002
/* The syscall's number at sys_exit, and whether it came through the 32-bit entry. */
#define ST_SYSCALL_NR(regs) ((long)(regs)->orig_ax)
static __always_inline int st_compat_syscall(void)
{
	struct task_struct *t = bpf_get_current_task_btf();
	return (t->thread_info.status & ST_TS_COMPAT) != 0;
}
#elif defined(__TARGET_ARCH_arm64)
#define ST_NR_CLOSE 57
#define ST_NR_READ 63
#define ST_NR_WRITE 64
#define ST_NR_READV 65
#define ST_NR_WRITEV 66
#define ST_NR_ACCEPT 202
#define ST_NR_CONNECT 203
#define ST_NR_SENDTO 206
#define ST_NR_RECVFROM 207
#define ST_NR_SENDMSG 211
#define ST_NR_RECVMSG 212
#define ST_NR_ACCEPT4 242
#define ST_NR_RECVMMSG 243
#define ST_NR_SENDMMSG 269
#define ST_TIF_32BIT 22
#define ST_SYSCALL_NR(regs) ((long)(regs)->syscallno)
static __always_inline int st_compat_syscall(void)
{
	struct task_struct *t = bpf_get_current_task_btf();
	return (t->thread_info.flags & (1UL << ST_TIF_32BIT)) != 0;
}
#else
#error "syscall numbers: unsupported architecture"
#endif

#endif
