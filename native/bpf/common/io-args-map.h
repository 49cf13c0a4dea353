/* Arguments of a socket call in flight, saved at sys_enter and used at sys_exit, by thread. */
#ifndef SIDETRACE_IO_ARGS_MAP_H
#define SIDETRACE_IO_ARGS_MAP_H
#include "defs.h"

enum st_io_kind {
	ST_IO_BUF = 1,  /* read/write/sendto/recvfrom: one buffer */
	ST_IO_IOV = 2,  /* readv/writev: an iovec array */
	ST_IO_MSG = 3,  /* sendmsg/recvmsg: a user_msghdr */
	ST_IO_MMSG = 4, /* sendmmsg/recvmmsg: an mmsghdr array */
	ST_IO_CONNECT = 5,
	ST_IO_ACCEPT = 6,
};

struct st_io_args {
	__u64 ptr;   /* buffer, iovec array, msghdr or mmsghdr array */
	__u64 count; /* buffer size, iovcnt or vlen */
	__s32 fd;
	__u8 kind;
	__u8 direction;
	__u8 reserved[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct st_io_args);
} st_io_args_map SEC(".maps");
#endif
