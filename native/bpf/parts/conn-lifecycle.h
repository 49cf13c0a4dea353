/* Connection lifecycle from the connect/accept exits and close: a connection that opens,
 * exchanges one request and closes within a millisecond still yields open, data, close. Called
 * from the syscall dispatch (syscalls.h). */
#ifndef SIDETRACE_PART_CONN_LIFECYCLE_H
#define SIDETRACE_PART_CONN_LIFECYCLE_H
#include "../common/emit.h"
#include "../common/task-map.h"

static __always_inline void st_remember(__s32 fd, __u8 kind)
{
	struct st_task *t = st_task(1);
	if (!t)
		return;
	t->io.fd = fd;
	t->io.kind = kind;
}

static __always_inline void st_opened(struct st_io_args *a, long ret)
{
	__s32 fd = a->fd;
	if (a->kind == ST_IO_CONNECT) {
		/* Non-blocking connects report EINPROGRESS; the local port is already bound. */
		if (ret != 0 && ret != -ST_EINPROGRESS)
			return;
	} else {
		if (ret < 0)
			return;
		fd = ret;
	}
	struct sock *sk = st_tcp_sock_of_fd(fd);
	if (sk)
		st_conn_open(fd, a->kind == ST_IO_CONNECT ? ST_ROLE_CLIENT : ST_ROLE_SERVER, sk);
}
#endif
