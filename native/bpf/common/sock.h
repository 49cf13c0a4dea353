/* From a file descriptor of the current task to its TCP socket and 4-tuple, with CO-RE reads:
 * task -> files -> fdtable -> file -> socket -> sock. */
#ifndef SIDETRACE_SOCK_H
#define SIDETRACE_SOCK_H
#include "defs.h"

/* The struct sock behind fd if it is an IPv4/IPv6 TCP socket, else NULL. Every read or write of
 * an untracked fd (files, pipes) comes here, so the walk down to the fd array uses direct BTF
 * loads rather than a helper call per pointer; the file it holds is a plain number to the
 * verifier, read from there on with helpers. */
static __always_inline struct sock *st_tcp_sock_of_fd(__s32 fd)
{
	if (fd < 0)
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	struct fdtable *fdt = task->files->fdt;
	if (!fdt)
		return 0;
	if ((unsigned int)fd >= fdt->max_fds)
		return 0;
	struct file **fds = fdt->fd;
	struct file *file = 0;
	bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
	if (!file)
		return 0;
	umode_t mode = BPF_CORE_READ(file, f_inode, i_mode);
	if ((mode & ST_S_IFMT) != ST_S_IFSOCK)
		return 0;
	struct socket *sock = BPF_CORE_READ(file, private_data);
	if (!sock)
		return 0;
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return 0;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != ST_AF_INET && family != ST_AF_INET6)
		return 0;
	if (BPF_CORE_READ(sk, sk_protocol) != ST_IPPROTO_TCP)
		return 0;
	return sk;
}

static __always_inline void st_fill_tuple(struct st_open_event *ev, struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	ev->family = family;
	ev->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	ev->remote_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == ST_AF_INET) {
		__u32 l = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 r = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(ev->local_addr, &l, 4);
		__builtin_memcpy(ev->remote_addr, &r, 4);
	} else {
		BPF_CORE_READ_INTO(ev->local_addr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(ev->remote_addr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
}
#endif
