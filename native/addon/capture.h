/* One loaded instance of the BPF programs, its ring-buffer reader thread and its uprobe links.
 * Independent of N-API except for the threadsafe function batches are handed to. */
#ifndef SIDETRACE_CAPTURE_H
#define SIDETRACE_CAPTURE_H

#define NAPI_VERSION 8
#include <node_api.h>
#include <stdint.h>
#include <stddef.h>

struct st_capture_opts {
	uint32_t ring_bytes;
	uint32_t chunk_bytes;
	uint32_t max_bytes_per_call;
	uint32_t batch_bytes;
	uint32_t max_pending_batches;
	uint32_t skip_uids[64];
	uint32_t n_skip_uids;
	uint32_t skip_pids[64];
	uint32_t n_skip_pids;
	uint16_t skip_ports[256];
	uint32_t n_skip_ports;
};

/* A batch handed to JS: records back to back, each as [u32 length][record bytes]. */
struct st_batch {
	uint32_t used;
	uint32_t count;
	uint32_t cap;
	uint8_t bytes[];
};

struct st_capture;

struct st_totals {
	uint64_t events_attempted, events_dropped, bytes_captured, bytes_truncated;
	uint64_t conns_opened, tls_unattributed, skipped_calls;
	uint64_t records_read, batches_delivered;
};

/* Loads and attaches; on failure returns NULL with code and msg filled. */
struct st_capture *st_capture_open(const struct st_capture_opts *opts,
				   napi_threadsafe_function tsfn, const char **code, char *msg,
				   size_t msg_len);
int st_capture_set_enabled(struct st_capture *cap, int enabled);
int st_capture_totals(struct st_capture *cap, struct st_totals *out);
/* Attaches the OpenSSL uprobes to every process mapping `path`. Returns a link-set id (>= 0) or
 * -1 with msg filled (no SSL_read/SSL_write symbols, unreadable file). */
int st_capture_attach_tls(struct st_capture *cap, const char *path, char *msg, size_t msg_len);
int st_capture_detach_tls(struct st_capture *cap, int id);
void st_capture_note_delivered(struct st_capture *cap);
/* JS is done with one delivered batch: the reader may hand over another. */
void st_capture_release(struct st_capture *cap);
/* Stops the reader (the caller must already have aborted the threadsafe function, which
 * unblocks a reader waiting for queue room) and frees everything. */
void st_capture_close(struct st_capture *cap);

#endif
