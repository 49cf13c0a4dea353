/* Loader and ring-buffer reader. The reader thread copies records into batches and hands each
 * full batch (or whatever one poll round produced) to JS through a threadsafe function with a
 * bounded queue: when JS falls behind the reader blocks, the ring fills, and the kernel counts
 * its drops, so memory stays bounded and every loss is accounted for. */
#include "capture.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "abi.h"
#include "sidetrace.skel.h"
#include "ssl-entry.h"

#define ST_MAX_TLS_SETS 1024
/* The programs wake the reader only when 512 KiB are waiting, or at an exec (events-ringbuf.h);
 * below that it finds records by polling this often, which bounds their delivery delay. 50 ms
 * keeps a quiet node's records as prompt as `--tail` needs while a busy one is woken by size. */
#define ST_READER_POLL_MS 50
#define ST_TLS_PROBES 8

struct st_tls_set {
	struct bpf_link *links[ST_TLS_PROBES];
	int used;
};

struct st_capture {
	struct sidetrace_bpf *skel;
	struct ring_buffer *rb;
	napi_threadsafe_function tsfn;
	pthread_t reader;
	int reader_started;
	atomic_int stop;
	uint32_t batch_bytes;
	struct st_batch *batch;
	atomic_uint_fast64_t records_read;
	atomic_uint_fast64_t batches_delivered;
	/* Batches handed to JS and not yet released by it (st_capture_release): the reader waits
	 * while max_in_flight are out, so JS can handle them one per event-loop
	 * turn and the ring, not the heap, absorbs what JS cannot keep up with. */
	pthread_mutex_t flow_lock;
	pthread_cond_t flow_cond;
	uint32_t in_flight;
	uint32_t max_in_flight;
	struct st_tls_set tls[ST_MAX_TLS_SETS];
	pthread_mutex_t tls_lock;
};

static struct st_batch *batch_new(uint32_t cap)
{
	struct st_batch *b = malloc(sizeof(*b) + cap);
	if (b) {
		b->used = 0;
		b->count = 0;
		b->cap = cap;
	}
	return b;
}

/* Blocks while JS holds max_in_flight unreleased batches, or the threadsafe function's queue is
 * full: that is the backpressure. */
static int flush(struct st_capture *cap)
{
	struct st_batch *b = cap->batch;
	if (!b || b->count == 0)
		return 0;
	pthread_mutex_lock(&cap->flow_lock);
	while (cap->in_flight >= cap->max_in_flight && !atomic_load(&cap->stop))
		pthread_cond_wait(&cap->flow_cond, &cap->flow_lock);
	cap->in_flight++;
	pthread_mutex_unlock(&cap->flow_lock);
	if (atomic_load(&cap->stop))
		return -1;
	cap->batch = NULL;
	/* Counted per batch, not per record: one atomic add where the hot loop had thousands. */
	atomic_fetch_add(&cap->records_read, b->count);
	if (napi_call_threadsafe_function(cap->tsfn, b, napi_tsfn_blocking) != napi_ok) {
		free(b);
		atomic_store(&cap->stop, 1);
		return -1;
	}
	return 0;
}

static int on_record(void *ctx, void *data, size_t size)
{
	struct st_capture *cap = ctx;
	if (cap->batch && cap->batch->used + 4 + size > cap->batch->cap && flush(cap) != 0)
		return -1;
	if (!cap->batch) {
		uint32_t want = cap->batch_bytes;
		if (want < 4 + size)
			want = 4 + size;
		cap->batch = batch_new(want);
		if (!cap->batch)
			return -ENOMEM;
	}
	struct st_batch *b = cap->batch;
	uint32_t len = size;
	memcpy(b->bytes + b->used, &len, 4);
	memcpy(b->bytes + b->used + 4, data, size);
	b->used += 4 + size;
	b->count++;
	return 0;
}

static void *reader_main(void *arg)
{
	struct st_capture *cap = arg;
	while (!atomic_load(&cap->stop)) {
		int n = ring_buffer__poll(cap->rb, ST_READER_POLL_MS);
		/* poll consumes only rings that signalled; records below the wakeup threshold did not. */
		if (n >= 0 || n == -EINTR)
			n = ring_buffer__consume(cap->rb);
		if (n < 0 && n != -EINTR)
			break;
		if (flush(cap) != 0)
			break;
	}
	free(cap->batch);
	cap->batch = NULL;
	return NULL;
}

static int quiet_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_WARN && getenv("SIDETRACE_BPF_DEBUG"))
		return vfprintf(stderr, fmt, args);
	if (level == LIBBPF_DEBUG && getenv("SIDETRACE_BPF_DEBUG"))
		return vfprintf(stderr, fmt, args);
	return 0;
}

static uint32_t pow2_at_least(uint32_t v, uint32_t min)
{
	uint32_t p = min;
	while (p < v && p < (1u << 30))
		p <<= 1;
	return p;
}

struct st_capture *st_capture_open(const struct st_capture_opts *opts,
				   napi_threadsafe_function tsfn, const char **code, char *msg,
				   size_t msg_len)
{
	libbpf_set_print(quiet_print);
	struct st_capture *cap = calloc(1, sizeof(*cap));
	if (!cap) {
		*code = "ST_AGENT_NO_MEMORY";
		snprintf(msg, msg_len, "ST_AGENT_NO_MEMORY: cannot allocate the capture");
		return NULL;
	}
	pthread_mutex_init(&cap->tls_lock, NULL);
	pthread_mutex_init(&cap->flow_lock, NULL);
	pthread_cond_init(&cap->flow_cond, NULL);
	/* JS releases each batch it handled (st_capture_release): the reader waits while
	 * max_pending_batches are out, so an overloaded JS thread leaves the excess in the ring. */
	cap->max_in_flight = opts->max_pending_batches ? opts->max_pending_batches : 1;
	cap->tsfn = tsfn;
	cap->batch_bytes = opts->batch_bytes;
	int err = 0;
	const char *stage = "open";
	cap->skel = sidetrace_bpf__open();
	if (!cap->skel) {
		err = -errno;
		goto fail;
	}
	/* The ring must be a power of two multiple of the page size. */
	uint32_t page = sysconf(_SC_PAGESIZE);
	bpf_map__set_max_entries(cap->skel->maps.st_events, pow2_at_least(opts->ring_bytes, page));
	/* Uprobes are attached per library by st_capture_attach_tls. */
	bpf_program__set_autoattach(cap->skel->progs.st_ssl_write_enter, false);
	bpf_program__set_autoattach(cap->skel->progs.st_ssl_read_enter, false);
	bpf_program__set_autoattach(cap->skel->progs.st_ssl_write_ex_enter, false);
	bpf_program__set_autoattach(cap->skel->progs.st_ssl_read_ex_enter, false);
	bpf_program__set_autoattach(cap->skel->progs.st_ssl_exit, false);
	stage = "load";
	/* The verifier gives up with EAGAIN when a signal is pending, and node gets many (SIGCHLD
	 * from its children, libuv's own): hold them for the second verification takes. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = sidetrace_bpf__load(cap->skel);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err)
		goto fail;

	stage = "configure";
	struct st_config cfg = {
		.enabled = 1,
		.chunk_bytes = opts->chunk_bytes,
		.max_bytes_per_call = opts->max_bytes_per_call,
	};
	uint32_t zero = 0;
	err = bpf_map__update_elem(cap->skel->maps.st_config_map, &zero, sizeof(zero), &cfg,
				   sizeof(cfg), BPF_ANY);
	uint8_t one = 1;
	for (uint32_t i = 0; !err && i < opts->n_skip_uids; i++)
		err = bpf_map__update_elem(cap->skel->maps.st_skip_uids, &opts->skip_uids[i],
					   sizeof(uint32_t), &one, 1, BPF_ANY);
	for (uint32_t i = 0; !err && i < opts->n_skip_pids; i++)
		err = bpf_map__update_elem(cap->skel->maps.st_skip_tgids, &opts->skip_pids[i],
					   sizeof(uint32_t), &one, 1, BPF_ANY);
	for (uint32_t i = 0; !err && i < opts->n_skip_ports; i++)
		err = bpf_map__update_elem(cap->skel->maps.st_skip_ports, &opts->skip_ports[i],
					   sizeof(uint16_t), &one, 1, BPF_ANY);
	if (err)
		goto fail;

	stage = "ring buffer";
	cap->rb = ring_buffer__new(bpf_map__fd(cap->skel->maps.st_events), on_record, cap, NULL);
	if (!cap->rb) {
		err = -errno;
		goto fail;
	}
	stage = "attach";
	err = sidetrace_bpf__attach(cap->skel);
	if (err)
		goto fail;
	stage = "reader thread";
	err = -pthread_create(&cap->reader, NULL, reader_main, cap);
	if (err)
		goto fail;
	cap->reader_started = 1;
	return cap;

fail:
	*code = "ST_AGENT_LOAD_FAILED";
	snprintf(msg, msg_len,
		 "ST_AGENT_LOAD_FAILED: %s failed: %s (set SIDETRACE_BPF_DEBUG=1 for libbpf's log)",
		 stage, strerror(err < 0 ? -err : err));
	st_capture_close(cap);
	return NULL;
}

int st_capture_set_enabled(struct st_capture *cap, int enabled)
{
	uint32_t zero = 0;
	struct st_config cfg;
	int err = bpf_map__lookup_elem(cap->skel->maps.st_config_map, &zero, sizeof(zero), &cfg,
				       sizeof(cfg), 0);
	if (err)
		return err;
	cfg.enabled = enabled ? 1 : 0;
	return bpf_map__update_elem(cap->skel->maps.st_config_map, &zero, sizeof(zero), &cfg,
				    sizeof(cfg), BPF_ANY);
}

int st_capture_totals(struct st_capture *cap, struct st_totals *out)
{
	int ncpu = libbpf_num_possible_cpus();
	if (ncpu <= 0)
		return ncpu;
	struct st_counters *per = calloc(ncpu, sizeof(*per));
	if (!per)
		return -ENOMEM;
	uint32_t zero = 0;
	int err = bpf_map__lookup_elem(cap->skel->maps.st_counters_map, &zero, sizeof(zero), per,
				       ncpu * sizeof(*per), 0);
	memset(out, 0, sizeof(*out));
	for (int i = 0; !err && i < ncpu; i++) {
		out->events_attempted += per[i].events_attempted;
		out->events_dropped += per[i].events_dropped;
		out->bytes_captured += per[i].bytes_captured;
		out->bytes_truncated += per[i].bytes_truncated;
		out->conns_opened += per[i].conns_opened;
		out->tls_unattributed += per[i].tls_unattributed;
		out->skipped_calls += per[i].skipped_calls;
	}
	free(per);
	out->records_read = atomic_load(&cap->records_read);
	out->batches_delivered = atomic_load(&cap->batches_delivered);
	return err;
}

void st_capture_note_delivered(struct st_capture *cap)
{
	atomic_fetch_add(&cap->batches_delivered, 1);
}

void st_capture_release(struct st_capture *cap)
{
	pthread_mutex_lock(&cap->flow_lock);
	if (cap->in_flight > 0)
		cap->in_flight--;
	pthread_cond_signal(&cap->flow_cond);
	pthread_mutex_unlock(&cap->flow_lock);
}

static void destroy_set(struct st_tls_set *set)
{
	for (int i = 0; i < ST_TLS_PROBES; i++) {
		if (set->links[i])
			bpf_link__destroy(set->links[i]);
		set->links[i] = NULL;
	}
	set->used = 0;
}

/* One SSL function to probe: at entry and at return, by symbol or by file offset. */
struct st_tls_probe {
	struct bpf_program *prog;
	const char *func;
	uint64_t offset; /* with func NULL */
	int ret;
	int required;
};

/* The probes for one direction: OpenSSL's internal function when the exported ones forward to
 * it (ssl-entry.c: one cheap pair instead of a single-stepped one), else SSL_x and SSL_x_ex. */
static int tls_probes(struct st_capture *cap, const char *path, int write,
		      struct st_tls_probe *out)
{
	struct sidetrace_bpf *s = cap->skel;
	const char *plain = write ? "SSL_write" : "SSL_read";
	const char *ex = write ? "SSL_write_ex" : "SSL_read_ex";
	struct bpf_program *enter = write ? s->progs.st_ssl_write_enter : s->progs.st_ssl_read_enter;
	struct bpf_program *enter_ex =
		write ? s->progs.st_ssl_write_ex_enter : s->progs.st_ssl_read_ex_enter;
	uint64_t internal;
	if (st_ssl_internal_offset(path, ex, plain, &internal) == 0) {
		/* Same arguments and return value as the _ex form. */
		out[0] = (struct st_tls_probe){ enter_ex, NULL, internal, 0, 1 };
		out[1] = (struct st_tls_probe){ s->progs.st_ssl_exit, NULL, internal, 1, 1 };
		return 2;
	}
	out[0] = (struct st_tls_probe){ enter, plain, 0, 0, 1 };
	out[1] = (struct st_tls_probe){ s->progs.st_ssl_exit, plain, 0, 1, 1 };
	/* OpenSSL 1.1.0 has no _ex forms. */
	out[2] = (struct st_tls_probe){ enter_ex, ex, 0, 0, 0 };
	out[3] = (struct st_tls_probe){ s->progs.st_ssl_exit, ex, 0, 1, 0 };
	return 4;
}

int st_capture_attach_tls(struct st_capture *cap, const char *path, char *msg, size_t msg_len)
{
	struct st_tls_probe probes[ST_TLS_PROBES];
	int n = tls_probes(cap, path, 1, probes);
	n += tls_probes(cap, path, 0, probes + n);
	pthread_mutex_lock(&cap->tls_lock);
	int id = -1;
	for (int i = 0; i < ST_MAX_TLS_SETS; i++) {
		if (!cap->tls[i].used) {
			id = i;
			break;
		}
	}
	if (id < 0) {
		pthread_mutex_unlock(&cap->tls_lock);
		snprintf(msg, msg_len, "ST_AGENT_TLS_ATTACH: more than %d OpenSSL libraries attached",
			 ST_MAX_TLS_SETS);
		return -1;
	}
	struct st_tls_set *set = &cap->tls[id];
	set->used = 1;
	for (int i = 0; i < n; i++) {
		LIBBPF_OPTS(bpf_uprobe_opts, uo, .func_name = probes[i].func,
			    .retprobe = probes[i].ret);
		/* pid -1: the probe lives on the file, so every process mapping it is covered,
		 * including ones that start later. libbpf resolves the symbol through libelf's
		 * mmap of the file, so even a 100 MB node binary costs no heap. */
		set->links[i] = bpf_program__attach_uprobe_opts(probes[i].prog, -1, path,
								probes[i].offset, &uo);
		if (!set->links[i]) {
			int e = errno;
			if (!probes[i].required)
				continue;
			destroy_set(set);
			pthread_mutex_unlock(&cap->tls_lock);
			snprintf(msg, msg_len, "ST_AGENT_TLS_ATTACH: cannot probe %s in %s: %s",
				 probes[i].func ? probes[i].func : "the internal SSL function", path,
				 strerror(e));
			return -1;
		}
	}
	pthread_mutex_unlock(&cap->tls_lock);
	return id;
}

int st_capture_detach_tls(struct st_capture *cap, int id)
{
	if (id < 0 || id >= ST_MAX_TLS_SETS)
		return -EINVAL;
	pthread_mutex_lock(&cap->tls_lock);
	destroy_set(&cap->tls[id]);
	pthread_mutex_unlock(&cap->tls_lock);
	return 0;
}

void st_capture_close(struct st_capture *cap)
{
	if (!cap)
		return;
	atomic_store(&cap->stop, 1);
	pthread_mutex_lock(&cap->flow_lock);
	pthread_cond_broadcast(&cap->flow_cond);
	pthread_mutex_unlock(&cap->flow_lock);
	if (cap->reader_started)
		pthread_join(cap->reader, NULL);
	for (int i = 0; i < ST_MAX_TLS_SETS; i++)
		if (cap->tls[i].used)
			destroy_set(&cap->tls[i]);
	ring_buffer__free(cap->rb);
	sidetrace_bpf__destroy(cap->skel);
	pthread_mutex_destroy(&cap->tls_lock);
	pthread_mutex_destroy(&cap->flow_lock);
	pthread_cond_destroy(&cap->flow_cond);
	free(cap);
}
