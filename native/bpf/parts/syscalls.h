/* The socket syscalls, through the raw sys_enter/sys_exit tracepoints (why: common/syscalls.h):
 * arguments saved at enter in the thread's storage, the call's outcome handled at exit. */
#ifndef SIDETRACE_PART_SYSCALLS_H
#define SIDETRACE_PART_SYSCALLS_H
#include "../common/syscalls.h"
#include "conn-lifecycle.h"
#include "data-syscalls.h"

SEC("tp_btf/sys_enter")
int BPF_PROG(st_sys_enter, struct pt_regs *regs, long id)
{
	__u8 kind, dir = ST_DIR_EGRESS;
	switch (id) {
	case ST_NR_READ:
	case ST_NR_RECVFROM:
		dir = ST_DIR_INGRESS;
		/* fallthrough */
	case ST_NR_WRITE:
	case ST_NR_SENDTO:
		kind = ST_IO_BUF;
		break;
	case ST_NR_READV:
		dir = ST_DIR_INGRESS;
		/* fallthrough */
	case ST_NR_WRITEV:
		kind = ST_IO_IOV;
		break;
	case ST_NR_RECVMSG:
		dir = ST_DIR_INGRESS;
		/* fallthrough */
	case ST_NR_SENDMSG:
		kind = ST_IO_MSG;
		break;
	case ST_NR_RECVMMSG:
		dir = ST_DIR_INGRESS;
		/* fallthrough */
	case ST_NR_SENDMMSG:
		kind = ST_IO_MMSG;
		break;
	case ST_NR_CONNECT:
		kind = ST_IO_CONNECT;
		break;
	case ST_NR_ACCEPT:
	case ST_NR_ACCEPT4:
		kind = ST_IO_ACCEPT;
		break;
	case ST_NR_CLOSE:
		if (st_config() && !st_compat_syscall())
			st_conn_close(PT_REGS_PARM1_SYSCALL(regs));
		return 0;
	default:
		return 0;
	}
	if (!st_config() || st_compat_syscall())
		return 0;
	__s32 fd = PT_REGS_PARM1_SYSCALL(regs);
	if (kind >= ST_IO_CONNECT)
		st_remember(fd, kind);
	else if (fd >= 0)
		st_io_enter(fd, kind, dir, PT_REGS_PARM2_SYSCALL(regs), PT_REGS_PARM3_SYSCALL(regs));
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(st_sys_exit, struct pt_regs *regs, long ret)
{
	switch (ST_SYSCALL_NR(regs)) {
	case ST_NR_READ:
	case ST_NR_WRITE:
	case ST_NR_RECVFROM:
	case ST_NR_SENDTO:
	case ST_NR_READV:
	case ST_NR_WRITEV:
	case ST_NR_RECVMSG:
	case ST_NR_SENDMSG:
	case ST_NR_RECVMMSG:
	case ST_NR_SENDMMSG:
	case ST_NR_CONNECT:
	case ST_NR_ACCEPT:
	case ST_NR_ACCEPT4:
		break;
	default:
		return 0;
	}
	/* Only calls whose enter saved arguments (tracked sockets, connect, accept) go on. */
	struct st_task *t = st_task(0);
	if (!t || t->io.kind == ST_IO_NONE)
		return 0;
	struct st_io_args a = t->io;
	t->io.kind = ST_IO_NONE;
	if (!st_config())
		return 0;
	if (a.kind >= ST_IO_CONNECT)
		st_opened(&a, ret);
	else
		st_io_exit(t, &a, ret);
	return 0;
}
#endif
