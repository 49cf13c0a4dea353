/* What each thread has in flight, in task-local storage: found through the task itself (no hash
 * lookup), written in place (no update and delete per syscall, as a map keyed by thread needs),
 * freed with the task. Created only for threads that touch a tracked socket or call SSL_*. */
#ifndef SIDETRACE_TASK_MAP_H
#define SIDETRACE_TASK_MAP_H
#include "defs.h"

enum st_io_kind {
	ST_IO_NONE = 0,
	ST_IO_BUF = 1,  /* read/write/sendto/recvfrom: one buffer */
	ST_IO_IOV = 2,  /* readv/writev: an iovec array */
	ST_IO_MSG = 3,  /* sendmsg/recvmsg: a user_msghdr */
	ST_IO_MMSG = 4, /* sendmmsg/recvmmsg: an mmsghdr array */
	ST_IO_CONNECT = 5,
	ST_IO_ACCEPT = 6,
};

/* A socket syscall's arguments, saved at sys_enter for sys_exit. */
struct st_io_args {
	__u64 ptr;   /* buffer, iovec array, msghdr or mmsghdr array */
	__u64 count; /* buffer size, iovcnt or vlen */
	__s32 fd;
	__u8 kind;   /* ST_IO_NONE: nothing in flight */
	__u8 direction;
	__u8 reserved[2];
};

/* The SSL_* call a thread is in (args saved at entry for the uretprobe); the socket syscalls the
 * library makes inside it (socket BIO: curl, python, nginx) name its fd. */
struct st_ssl_call {
	__u64 ssl; /* 0: no call in flight */
	__u64 buf;
	__u64 out_len_ptr; /* size_t * of the _ex variants, 0 otherwise */
	__s32 fd;          /* socket fd used inside the call, -1 until seen */
	__u8 direction;
	__u8 reserved[3];
};

/* The last ciphertext read outside an SSL call, for libraries that feed OpenSSL through memory
 * BIOs (node reads the socket, then calls SSL_read on that data). */
struct st_last_read {
	__s32 fd;
	__u32 reserved;
	__u64 ts_ns; /* 0: none */
};

struct st_task {
	struct st_io_args io;
	struct st_ssl_call ssl;
	struct st_last_read last_read;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct st_task);
} st_tasks SEC(".maps");

/* The current thread's state; with create, made (zeroed) when missing. NULL only when the
 * storage cannot be allocated or is busy (a program running nested in another on this CPU). */
static __always_inline struct st_task *st_task(int create)
{
	return bpf_task_storage_get(&st_tasks, bpf_get_current_task_btf(), 0,
				    create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
}
#endif
