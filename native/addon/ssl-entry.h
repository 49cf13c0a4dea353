/* Where to put the OpenSSL uprobes so that each SSL call costs one cheap probe pair. */
#ifndef SIDETRACE_SSL_ENTRY_H
#define SIDETRACE_SSL_ENTRY_H

#include <stdint.h>

/* OpenSSL 1.1.1 and 3 implement `caller` (SSL_read) and `stub` (SSL_read_ex) with one internal
 * function, ssl_read_internal(s, buf, num, size_t *readbytes) (ssl_write_internal for writes).
 * When `stub` is only a forwarding call to it, as in distribution builds of libssl, this finds
 * that function's file offset in `path` and returns 0; -1 when the pattern is not there (node's
 * static OpenSSL inlines it, other architectures), and the exported functions are probed. */
int st_ssl_internal_offset(const char *path, const char *stub, const char *caller,
			   uint64_t *file_offset);

#endif
