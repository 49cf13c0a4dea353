/* The byte layout of the records the BPF programs put on the ring buffer, and of the config the
 * loader writes: included by the kernel programs and by the addon (src/bpf-fallback/native.ts
 * mirrors the offsets; its decoder test pins them). Little-endian, naturally aligned, no padding
 * the compiler could choose differently on either side. */
#ifndef SIDETRACE_ABI_H
#define SIDETRACE_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Largest payload one data event can carry (a per-CPU scratch value must stay under 32 KiB); the
 * runtime per-event cap is at most this. */
#define ST_MAX_CHUNK 16384
/* Chunks one call may be split into, so at most 1 MiB of one call is copied; bytes beyond the
 * runtime per-call budget are counted as truncated. */
#define ST_MAX_CHUNKS_PER_CALL 64
/* iovec entries (readv/writev/sendmsg/recvmsg) and messages (sendmmsg/recvmmsg) looked at. */
#define ST_MAX_IOV 16
#define ST_MAX_MMSG 8
#define ST_COMM_LEN 16

enum st_event_type {
	ST_EV_OPEN = 1,
	ST_EV_DATA = 2,
	ST_EV_CLOSE = 3,
	ST_EV_EXEC = 4,
	ST_EV_EXIT = 5,
};

enum st_role { ST_ROLE_UNKNOWN = 0, ST_ROLE_CLIENT = 1, ST_ROLE_SERVER = 2 };
enum st_direction { ST_DIR_EGRESS = 0, ST_DIR_INGRESS = 1 };
enum st_source { ST_SRC_SYSCALL = 0, ST_SRC_TLS = 1 };

/* 32 bytes, first in every record. conn_id is 0 and fd -1 for process events. */
struct st_event_header {
	__u32 type;
	__u32 pid;
	__u32 tid;
	__s32 fd;
	__u64 ts_ns;
	__u64 conn_id;
};

/* Covers bytes [pos, pos + size) of its (connection, direction, source) stream; the first `len`
 * of them are in data[] (len < size when the per-call budget ran out). */
struct st_data_event {
	struct st_event_header h;
	__u64 pos;
	__u64 size;
	__u32 len;
	__u8 direction;
	__u8 source;
	__u16 reserved;
	__u8 data[ST_MAX_CHUNK];
};
#define ST_DATA_HEADER_SIZE 56

struct st_open_event {
	struct st_event_header h;
	__u8 role;
	__u8 family; /* AF_INET (2) or AF_INET6 (10) */
	__u16 local_port;
	__u16 remote_port;
	__u16 reserved;
	__u8 local_addr[16]; /* IPv4 uses the first 4 bytes */
	__u8 remote_addr[16];
	char comm[ST_COMM_LEN];
};

struct st_close_event {
	struct st_event_header h;
	__u64 bytes_sent;
	__u64 bytes_received;
};

/* ST_EV_EXEC and ST_EV_EXIT. */
struct st_proc_event {
	struct st_event_header h;
	char comm[ST_COMM_LEN];
};

/* Written by the loader into the single-entry config array. */
struct st_config {
	__u32 enabled;
	__u32 chunk_bytes;        /* per-event payload cap, 1..ST_MAX_CHUNK */
	__u32 max_bytes_per_call; /* copied per call over all its chunks */
	__u32 reserved;
};

/* Per-CPU counters the programs keep; the addon sums them. */
struct st_counters {
	__u64 events_attempted; /* every record a program tried to put on the ring */
	__u64 events_dropped;   /* ring buffer full: the record was lost in the kernel */
	__u64 bytes_captured;   /* payload bytes copied into data events */
	__u64 bytes_truncated;  /* payload bytes not copied (over the per-call budget) */
	__u64 conns_opened;
	__u64 tls_unattributed; /* TLS plaintext whose socket could not be found */
	__u64 skipped_calls;    /* calls on sockets of skipped uids/ports */
	__u64 reserved;
};

#endif
