/* SPDX-License-Identifier: MIT */
/*
 * Private to encfs/blob*.c: the interface between the blob front end (blob.c: options, URL
 * handling, the retry loop, the ETag bookkeeping around our own writes) and its back ends
 * (blob_http.c for Azure Blob and generic HTTP(S), blob_file.c for file://).
 *
 * A back end performs ONE attempt of an operation and says whether another attempt may help;
 * blob.c owns the policy (how many attempts, how long to wait, what the final error says), so
 * every back end retries the same way.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

#include "encfs.h"

#define BLOB_PAGE_SIZE 512u
#define BLOB_MAX_WRITE (4u * 1024 * 1024) /* Put Page limit per call */
#define BLOB_ETAG_MAX sizeof(((struct blob_properties *)0)->etag)

/* What one failed attempt tells the retry loop. A back end only sets fields. */
struct blob_attempt {
	bool retryable; /* another attempt may succeed (transport error, 5xx, short body) */
	bool retry_now; /* retry at once without counting an attempt (fresh token) */
	unsigned retry_after_ms; /* the server's Retry-After; 0 = none */
	unsigned auth_retries;   /* persists across attempts: token refreshes already done */
};

/* Buffer @seg of a vectored read is complete (see blob_readv()). */
typedef void (*blob_seg_done_fn)(void *userdata, unsigned seg);

/*
 * Where the bytes of a streamed read go (blob_backend.stream): buffers the consumer hands out one
 * at a time, as the bytes arrive, instead of a vector fixed before the request. The block cache
 * streams a sequential reader's blocks this way with one long request (block_cache.c).
 */
struct blob_stream_sink {
	/* The buffer for the stream's next bytes (they follow those of the previous buffer) and
	 * its length in *@len (> 0, at most what is left of the stream), or NULL to end the
	 * transfer here: not an error, the consumer moved on. It may block until a buffer is
	 * free: that is the stream's back-pressure (the server stalls on a full TCP window). */
	void *(*next)(void *userdata, size_t *len);
	/* The buffer handed out last holds its final, checked bytes. */
	void (*done)(void *userdata);
	/* Polled while the transfer waits for the server (about once a second at least): true
	 * ends the transfer like a NULL from next(), also in the middle of a buffer. */
	bool (*cancelled)(void *userdata);
	void *userdata;
};

struct blob_backend {
	const char *name;
	/* Fill b->props (size, etag, page_blob; the kind may be refined from the answer). */
	int (*open)(struct blob *b, struct blob_attempt *a, struct skr_error *err);
	/* Exactly @len bytes at @off into the @iovcnt buffers of @iov (their lengths add up to
	 * @len), the blob's ETag being @etag ("" = unconditional): 0, or -ESTALE when the blob no
	 * longer has that ETag. @seg_done (may be NULL) is called with the index of each buffer
	 * once it holds its final, checked bytes, in order, even when the attempt fails later. */
	int (*read)(struct blob *b, const struct iovec *iov, unsigned iovcnt, size_t len,
	            uint64_t off, const char *etag, blob_seg_done_fn seg_done, void *seg_userdata,
	            struct blob_attempt *a, struct skr_error *err);
	/* Optional (NULL: the back end only reads into vectors): the @len bytes at @off, ETag
	 * @etag as for read, as ONE request whose bytes go to @sink as they arrive. 0 when they
	 * all arrived or the sink ended the transfer; on failure the buffer handed out last may
	 * be incomplete, those before it are done. Transfers wait on the sink for long, so a
	 * stalled server is detected by its silence (timeout_ms without a byte), not by the
	 * duration of the whole transfer. */
	int (*stream)(struct blob *b, uint64_t off, size_t len, const char *etag,
	              const struct blob_stream_sink *sink, struct blob_attempt *a,
	              struct skr_error *err);
	/* Write; on success @etag_out holds the blob's ETag after the write ("" if unknown). */
	int (*write)(struct blob *b, const void *buf, size_t len, uint64_t off,
	             char etag_out[BLOB_ETAG_MAX], struct blob_attempt *a, struct skr_error *err);
	/* The blob's current ETag (after overlapping writes of our own made it uncertain). */
	int (*current_etag)(struct blob *b, char etag_out[BLOB_ETAG_MAX], struct blob_attempt *a,
	                    struct skr_error *err);
	void (*close)(struct blob *b);
};

struct blob {
	struct blob_options o; /* strings below are our copies */
	char *url;             /* with the SAS: a secret, never printed */
	char *display_url;     /* blob_url_redact(url) */
	char *ca_bundle;
	struct blob_properties props; /* as seen at open */
	const struct blob_backend *be;
	void *be_data;

	/* Our own writes change the ETag; reads must not mistake that for a foreign change. */
	pthread_mutex_t lock;
	pthread_cond_t writes_done;
	char etag[BLOB_ETAG_MAX]; /* the ETag reads expect: props.etag, then our writes' answers */
	unsigned writes_inflight;
	uint64_t write_gen;    /* completed (or failed) writes */
	uint64_t write_starts; /* started writes, to see whether one overlapped another */
	bool etag_uncertain; /* writes overlapped: the last answer's ETag may not be the last one */
};

extern const struct blob_backend blob_http_backend;
extern const struct blob_backend blob_file_backend;

/*
 * blob_read() into several buffers: the bytes at @off, as many as the @iovcnt buffers of @iov
 * hold, land in them in order. The block cache fetches a run of consecutive blocks with one
 * request this way, straight into the blocks' own buffers (no copy through a run buffer).
 * @seg_done (may be NULL) is called from the calling thread with the index of each buffer as
 * soon as it holds its final bytes, in order (a reader need not wait for the whole run); such a
 * buffer is never written again: a retry resumes at the first incomplete one. On failure the
 * buffers not reported are undefined.
 */
int blob_readv(struct blob *b, const struct iovec *iov, unsigned iovcnt, uint64_t off,
               blob_seg_done_fn seg_done, void *seg_userdata, struct skr_error *err);

/* Effective option values (the documented defaults for 0). */
unsigned blob_opt_timeout_ms(const struct blob_options *o);
unsigned blob_opt_max_attempts(const struct blob_options *o);

/*
 * The shared retry policy: run @fn until it succeeds, fails for good, or max_attempts are spent,
 * sleeping between attempts with exponential backoff (backoff_ms doubled, capped at
 * max_backoff_ms; a Retry-After is honoured up to the same cap). @what names the operation in
 * logs and in the final error ("read of 4096 bytes at 0"). When retryable failures exhaust the
 * attempts the result is -EIO with the last reason.
 */
typedef int (*blob_attempt_fn)(void *userdata, struct blob_attempt *a, struct skr_error *err);
int blob_retry_run(const struct blob_options *o, const char *display_url, const char *what,
                   blob_attempt_fn fn, void *userdata, struct skr_error *err);

/* The delay before attempt @attempt + 1 (attempt ≥ 1) under @o; exposed for the unit test. */
unsigned blob_backoff_delay_ms(const struct blob_options *o, unsigned attempt,
                               unsigned retry_after_ms);

/* URL classification without network access: file://, Azure (host *.blob.*, a SAS with sv=
 * and sig=, or a bearer token), else generic HTTP. -EINVAL with a reason for other schemes. */
int blob_kind_from_url(const char *url, bool has_token, enum blob_kind *kind,
                       struct skr_error *err);

/* "file:///abs/path" → "/abs/path" (percent-decoded); malloc'ed. */
int blob_file_path_from_url(const char *url, char **path, struct skr_error *err);

/* A blob handle for a back end without the open step (upload creates the blob first). */
int blob_new_handle(const struct blob_options *o, enum blob_kind kind, struct blob **out,
                    struct skr_error *err);

/* Upload helpers of the back ends (blob_upload.c drives them). */
int blob_http_create_page_blob(struct blob *b, uint64_t size, bool overwrite,
                               struct skr_error *err);
int blob_http_delete(struct blob *b, struct skr_error *err);
int blob_file_create(struct blob *b, uint64_t size, bool overwrite, struct skr_error *err);
int blob_file_delete(struct blob *b, struct skr_error *err);

/*
 * Parsers of server answers (bounds-checked, fuzzed by tests/fuzz/fuzz_blob_response.c).
 * All return 0 or -EPROTO for a malformed value.
 */
/* "bytes START-END/TOTAL", or an unknown TOTAL ("*"): *total = UINT64_MAX then. */
int blob_parse_content_range(const char *v, uint64_t *start, uint64_t *end, uint64_t *total);
/* Decimal digits only, no sign, no overflow. */
int blob_parse_u64(const char *v, uint64_t *out);
/* Delay-seconds or an HTTP date (relative to @now); the delay in ms, saturated at UINT_MAX. */
int blob_parse_retry_after(const char *v, time_t now, unsigned *ms);
/* The text of the first <Code>…</Code> in an Azure error body, sanitized, "" when absent. */
void blob_parse_error_code(const char *body, size_t len, char *code, size_t code_size);

/* The response headers the HTTP back end uses, collected line by line (blob_http.c). */
struct blob_http_resp {
	long status; /* from the last status line; 0 before one */
	bool has_content_length, has_content_range, has_retry_after;
	uint64_t content_length;
	uint64_t range_start, range_end, range_total;
	char etag[BLOB_ETAG_MAX];
	char blob_type[32];   /* x-ms-blob-type */
	char error_code[64];  /* x-ms-error-code */
	char retry_after[64]; /* raw, parsed when used */
	char content_encoding[32];
	const char *malformed; /* the header that could not be used, or NULL */
};

/* Feed one header line as libcurl delivers it (CRLF included or not). A status line starts a
 * new response (redirects, 100 Continue): everything collected before is forgotten. */
void blob_http_parse_header(struct blob_http_resp *r, const char *line, size_t len);
