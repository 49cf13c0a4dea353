/* N-API surface of the capture: open(opts, onBatch) -> handle, counters, setEnabled, release,
 * attachTls, detachTls, close. Batches reach JS as zero-copy external Buffers; src/bpf-fallback/
 * native.ts decodes them and releases each once handled (the reader's backpressure). */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "preflight.h"

struct st_handle {
	struct st_capture *cap;
	napi_threadsafe_function tsfn;
	int closed;
};

#define CHECK(env, call)                                                        \
	do {                                                                    \
		if ((call) != napi_ok) {                                        \
			napi_throw_error((env), "ST_AGENT_NAPI", "N-API call failed: " #call); \
			return NULL;                                            \
		}                                                               \
	} while (0)

static void free_batch(napi_env env, void *data, void *hint)
{
	(void)env;
	free(hint);
}

static void call_js(napi_env env, napi_value js_cb, void *context, void *data)
{
	struct st_batch *b = data;
	struct st_handle *h = context;
	if (!env || !js_cb) {
		free(b);
		return;
	}
	napi_value args[2], undefined, result;
	if (napi_create_external_buffer(env, b->used, b->bytes, free_batch, b, &args[0]) != napi_ok) {
		free(b);
		/* Never reaches JS, so JS will not release it. */
		if (h->cap)
			st_capture_release(h->cap);
		return;
	}
	napi_create_uint32(env, b->count, &args[1]);
	napi_get_undefined(env, &undefined);
	if (h->cap)
		st_capture_note_delivered(h->cap);
	if (napi_call_function(env, undefined, js_cb, 2, args, &result) == napi_pending_exception) {
		napi_value err;
		napi_get_and_clear_last_exception(env, &err);
		napi_fatal_exception(env, err);
	}
}

static uint32_t opt_u32(napi_env env, napi_value obj, const char *name, uint32_t def)
{
	napi_value v;
	bool has = false;
	uint32_t out = def;
	if (napi_has_named_property(env, obj, name, &has) == napi_ok && has &&
	    napi_get_named_property(env, obj, name, &v) == napi_ok) {
		napi_valuetype t;
		napi_typeof(env, v, &t);
		if (t == napi_number)
			napi_get_value_uint32(env, v, &out);
	}
	return out;
}

/* A list of whole numbers in 0..limit, at most max of them, into out[]; *n gets the count.
 * Anything else throws a TypeError naming the field and the element: a silent 0 would skip
 * uid 0 (root), and a silent cut would trace what the caller meant to skip. */
static bool opt_u32_list(napi_env env, napi_value obj, const char *name, uint32_t *out,
			 uint32_t max, uint32_t limit, uint32_t *n)
{
	napi_value v;
	bool has = false, is_array = false;
	char msg[160];
	*n = 0;
	if (napi_has_named_property(env, obj, name, &has) != napi_ok || !has)
		return true;
	napi_get_named_property(env, obj, name, &v);
	napi_is_array(env, v, &is_array);
	if (!is_array) {
		snprintf(msg, sizeof(msg), "%s must be an array", name);
		napi_throw_type_error(env, "ST_AGENT_BAD_ARGS", msg);
		return false;
	}
	uint32_t len = 0;
	napi_get_array_length(env, v, &len);
	if (len > max) {
		snprintf(msg, sizeof(msg), "%s has %u entries, at most %u are supported", name, len, max);
		napi_throw_type_error(env, "ST_AGENT_BAD_ARGS", msg);
		return false;
	}
	for (uint32_t i = 0; i < len; i++) {
		napi_value e;
		double d = -1;
		napi_get_element(env, v, i, &e);
		if (napi_get_value_double(env, e, &d) != napi_ok || d < 0 || d > limit || d != (double)(uint32_t)d) {
			snprintf(msg, sizeof(msg), "%s[%u] must be a whole number in 0..%u", name, i, limit);
			napi_throw_type_error(env, "ST_AGENT_BAD_ARGS", msg);
			return false;
		}
		out[i] = (uint32_t)d;
	}
	*n = len;
	return true;
}

static void handle_finalize(napi_env env, void *data, void *hint)
{
	(void)env;
	(void)hint;
	struct st_handle *h = data;
	if (!h->closed) {
		h->closed = 1;
		napi_release_threadsafe_function(h->tsfn, napi_tsfn_abort);
		st_capture_close(h->cap);
	}
	free(h);
}

static struct st_handle *get_handle(napi_env env, napi_value v)
{
	void *data = NULL;
	if (napi_get_value_external(env, v, &data) != napi_ok || !data) {
		napi_throw_type_error(env, "ST_AGENT_BAD_HANDLE", "not a capture handle");
		return NULL;
	}
	struct st_handle *h = data;
	if (h->closed) {
		napi_throw_error(env, "ST_AGENT_CLOSED", "the capture is closed");
		return NULL;
	}
	return h;
}

static napi_value js_open(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 2) {
		napi_throw_type_error(env, "ST_AGENT_BAD_ARGS", "open(opts, onBatch)");
		return NULL;
	}
	struct st_capture_opts opts = { 0 };
	opts.ring_bytes = opt_u32(env, argv[0], "ringBytes", 8u << 20);
	opts.chunk_bytes = opt_u32(env, argv[0], "chunkBytes", 16384);
	opts.max_bytes_per_call = opt_u32(env, argv[0], "maxBytesPerCall", 65536);
	/* 96 KiB: below the 128 KiB mmap threshold fixed in init(), so malloc recycles batches
	 * from its arena (the 512 KiB that wake the reader, events-ringbuf.h, fill ~6). At
	 * 256 KiB each batch was mapped, faulted in page by page as the reader filled it, and
	 * unmapped when GC freed it: 60% of the reader thread's CPU, and munmap on the JS thread,
	 * at 10k req/s (perf); 96 KiB halved the reader's CPU. 84 of them (8 MiB) may wait for JS,
	 * beside the 8 MiB ring: what a burst needs before the kernel drops (10,000 short
	 * connections as fast as they go, test/e2e/agent-kernel.test.ts). */
	opts.batch_bytes = opt_u32(env, argv[0], "batchBytes", 96u << 10);
	opts.max_pending_batches = opt_u32(env, argv[0], "maxPendingBatches", 84);
	uint32_t tls = opt_u32(env, argv[0], "tls", 1);
	uint32_t ports[256];
	if (!opt_u32_list(env, argv[0], "skipUids", opts.skip_uids, 64, UINT32_MAX, &opts.n_skip_uids) ||
	    !opt_u32_list(env, argv[0], "skipPids", opts.skip_pids, 64, UINT32_MAX, &opts.n_skip_pids) ||
	    !opt_u32_list(env, argv[0], "skipPorts", ports, 256, 65535, &opts.n_skip_ports))
		return NULL;
	for (uint32_t i = 0; i < opts.n_skip_ports; i++)
		opts.skip_ports[i] = (uint16_t)ports[i];

	const char *code = NULL;
	char msg[512];
	if (st_preflight(tls != 0, &code, msg, sizeof(msg)) != 0) {
		napi_throw_error(env, code, msg);
		return NULL;
	}
	struct st_handle *h = calloc(1, sizeof(*h));
	if (!h) {
		napi_throw_error(env, "ST_AGENT_NO_MEMORY", "cannot allocate the capture handle");
		return NULL;
	}
	napi_value name;
	napi_create_string_utf8(env, "sidetrace-bpf-batches", NAPI_AUTO_LENGTH, &name);
	if (napi_create_threadsafe_function(env, argv[1], NULL, name, opts.max_pending_batches, 1,
					    NULL, NULL, h, call_js, &h->tsfn) != napi_ok) {
		free(h);
		napi_throw_error(env, "ST_AGENT_NAPI", "cannot create the batch channel");
		return NULL;
	}
	h->cap = st_capture_open(&opts, h->tsfn, &code, msg, sizeof(msg));
	if (!h->cap) {
		napi_release_threadsafe_function(h->tsfn, napi_tsfn_abort);
		free(h);
		napi_throw_error(env, code, msg);
		return NULL;
	}
	napi_value out;
	CHECK(env, napi_create_external(env, h, handle_finalize, NULL, &out));
	return out;
}

static napi_value js_close(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	void *data = NULL;
	if (argc < 1 || napi_get_value_external(env, argv[0], &data) != napi_ok || !data)
		return NULL;
	struct st_handle *h = data;
	if (h->closed)
		return NULL;
	h->closed = 1;
	/* Abort first: it wakes a reader blocked on a full queue, so the join below can finish. */
	napi_release_threadsafe_function(h->tsfn, napi_tsfn_abort);
	st_capture_close(h->cap);
	h->cap = NULL;
	return NULL;
}

static void set_num(napi_env env, napi_value obj, const char *name, uint64_t v)
{
	napi_value n;
	napi_create_double(env, (double)v, &n);
	napi_set_named_property(env, obj, name, n);
}

static napi_value js_counters(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	struct st_handle *h = get_handle(env, argv[0]);
	if (!h)
		return NULL;
	struct st_totals t;
	if (st_capture_totals(h->cap, &t) != 0) {
		napi_throw_error(env, "ST_AGENT_COUNTERS", "cannot read the kernel counters");
		return NULL;
	}
	napi_value out;
	CHECK(env, napi_create_object(env, &out));
	set_num(env, out, "eventsAttempted", t.events_attempted);
	set_num(env, out, "eventsDropped", t.events_dropped);
	set_num(env, out, "bytesCaptured", t.bytes_captured);
	set_num(env, out, "bytesTruncated", t.bytes_truncated);
	set_num(env, out, "connsOpened", t.conns_opened);
	set_num(env, out, "tlsUnattributed", t.tls_unattributed);
	set_num(env, out, "skippedCalls", t.skipped_calls);
	set_num(env, out, "recordsRead", t.records_read);
	set_num(env, out, "batchesDelivered", t.batches_delivered);
	return out;
}

static napi_value js_set_enabled(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	struct st_handle *h = get_handle(env, argv[0]);
	if (!h)
		return NULL;
	bool on = true;
	napi_get_value_bool(env, argv[1], &on);
	if (st_capture_set_enabled(h->cap, on) != 0)
		napi_throw_error(env, "ST_AGENT_CONFIG", "cannot update the config map");
	return NULL;
}

/* release(handle): JS is done with one batch it was handed; the reader may hand over another. */
static napi_value js_release(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	struct st_handle *h = get_handle(env, argv[0]);
	if (!h)
		return NULL;
	st_capture_release(h->cap);
	return NULL;
}

static napi_value js_attach_tls(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	struct st_handle *h = get_handle(env, argv[0]);
	if (!h)
		return NULL;
	char path[4096];
	size_t len = 0;
	if (napi_get_value_string_utf8(env, argv[1], path, sizeof(path), &len) != napi_ok) {
		napi_throw_type_error(env, "ST_AGENT_BAD_ARGS", "attachTls(handle, path)");
		return NULL;
	}
	char msg[512];
	int id = st_capture_attach_tls(h->cap, path, msg, sizeof(msg));
	if (id < 0) {
		napi_throw_error(env, "ST_AGENT_TLS_ATTACH", msg);
		return NULL;
	}
	napi_value out;
	napi_create_int32(env, id, &out);
	return out;
}

static napi_value js_detach_tls(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	struct st_handle *h = get_handle(env, argv[0]);
	if (!h)
		return NULL;
	int32_t id = -1;
	napi_get_value_int32(env, argv[1], &id);
	st_capture_detach_tls(h->cap, id);
	return NULL;
}

static napi_value init(napi_env env, napi_value exports)
{
	/* Only the agent loads this addon, so its malloc settings are the agent's. Batches are
	 * malloc'd on the reader thread and freed on the JS thread when GC collects their Buffer;
	 * glibc raises its mmap threshold past a freed mmapped block's size, after which freed
	 * batches (and the export path's large buffers) stay in arenas as resident free space. The
	 * default threshold, fixed, maps and unmaps them instead: peak RSS at 10k req/s fell from
	 * ~225 to ~200 MiB (src/bpf-fallback/README.md). Capping arenas (M_ARENA_MAX 2) did not help. */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	napi_property_descriptor props[] = {
		{ "open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL },
		{ "close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL },
		{ "counters", NULL, js_counters, NULL, NULL, NULL, napi_default, NULL },
		{ "setEnabled", NULL, js_set_enabled, NULL, NULL, NULL, napi_default, NULL },
		{ "release", NULL, js_release, NULL, NULL, NULL, napi_default, NULL },
		{ "attachTls", NULL, js_attach_tls, NULL, NULL, NULL, napi_default, NULL },
		{ "detachTls", NULL, js_detach_tls, NULL, NULL, NULL, napi_default, NULL },
	};
	napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
