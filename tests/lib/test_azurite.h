/* SPDX-License-Identifier: MIT */
/*
 * A real Azure Storage emulator (Azurite's blob service, from npm) for integration tests and
 * benchmarks: found through a fixed lookup order, started on a free loopback port, stopped when
 * the test exits; the Blob REST calls a test needs to arrange blobs, signed with SharedKey
 * (protocols.md §6.3) by this code with the emulator's well-known account; service SAS
 * generation for a blob.
 *
 * Azurite is found as: $AZURITE_BLOB_BIN, else
 * ${XDG_CACHE_HOME:-$HOME/.cache}/csc-azurite/node_modules/.bin/azurite-blob (where
 * tools/install-deps.sh installs it), else azurite-blob on $PATH.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* Azurite's fixed development account (documented by Microsoft, not a secret). */
#define TEST_AZURITE_ACCOUNT "devstoreaccount1"
#define TEST_AZURITE_KEY                                                                           \
	"Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
/* x-ms-version of our requests and sv of our SAS (the 2020-12-06+ string-to-sign layout). */
#define TEST_AZURITE_VERSION "2021-08-06"

struct test_azurite {
	char dir[512];      /* its working directory (and --location when persisting) */
	char log[600];      /* its stdout and stderr (the access log) */
	pid_t pid;          /* -1 when not running */
	int port;           /* blob service on 127.0.0.1 */
	char endpoint[128]; /* http://127.0.0.1:PORT/devstoreaccount1 */
};

/* The azurite-blob to run (see above), or NULL when none is executable. */
const char *test_azurite_bin(void);

/*
 * For a test's main() before anything else: true when Azurite is there. Otherwise, when
 * SKR_ALLOW_SKIP=1, says so and exits 77 (meson's "skipped"); else prints how to install it and
 * returns false: the test must fail (CI installs Azurite, so a missing one is a broken setup).
 */
bool test_azurite_require(void);

/*
 * Start azurite-blob in @dir (created; must stay until it stops) on a free port, blobs in memory
 * (--inMemoryPersistence) when @in_memory, else on disk in @dir (--location), and wait up to 60 s until it answers a SharedKey
 * List Containers. @az must stay valid until the test exits (a static variable): it is killed
 * then. 0, or -1 after saying why (with the end of its log).
 */
int test_azurite_start(struct test_azurite *az, const char *dir, bool in_memory);

/* SIGTERM, then SIGKILL after 10 s; 0 on a clean stop. */
int test_azurite_stop(struct test_azurite *az);

/* ---------------------------------------------------------------------------------------------
 * Blob REST with SharedKey. Each returns 0, or -1 after printing the status and Azure's error.
 * ------------------------------------------------------------------------------------------- */

/* Create Container; @public_blob: "x-ms-blob-public-access: blob" (anonymous blob reads). */
int test_azurite_create_container(const struct test_azurite *az, const char *container,
                                  bool public_blob);

/* Put Blob (block blob, replacing any): ≤ 4 MiB in one request, else Put Block ×N + Put Block
 * List. Overwriting a blob gives it a new ETag. */
int test_azurite_put_block_blob(const struct test_azurite *az, const char *container,
                                const char *blob, const void *data, size_t len);
/* The same from @size bytes of @fd (pread, 8 MiB blocks): for images too big for memory. */
int test_azurite_put_block_blob_fd(const struct test_azurite *az, const char *container,
                                   const char *blob, int fd, uint64_t size);

/* Create a page blob of @len bytes (a multiple of 512) and Put Page its content (4 MiB calls;
 * all-zero pages skipped: a new page blob reads as zeros). */
int test_azurite_put_page_blob(const struct test_azurite *az, const char *container,
                               const char *blob, const void *data, size_t len);

/* Get Blob: the whole content (malloc'ed, *@data NULL for an empty blob). */
int test_azurite_get_blob(const struct test_azurite *az, const char *container, const char *blob,
                          uint8_t **data, size_t *len);

/* Get Blob Properties: the ETag (with its quotes, as the server sends it). */
int test_azurite_get_etag(const struct test_azurite *az, const char *container, const char *blob,
                          char etag[128]);

/* ---------------------------------------------------------------------------------------------
 * URLs and SAS
 * ------------------------------------------------------------------------------------------- */

/*
 * A service SAS query for one blob (sr=b): "sv=…&sr=b&sp=@permissions&se=…&sig=…" (no '?'),
 * valid until @expiry; signed with @key_b64 (NULL: the account key; another key gives a SAS the
 * service refuses). malloc'ed.
 */
char *test_azurite_blob_sas(const char *container, const char *blob, const char *permissions,
                            time_t expiry, const char *key_b64);

/* "http://127.0.0.1:@port/devstoreaccount1/@container/@blob[?@query]" (@port 0: Azurite's own,
 * another: a proxy in front of it). malloc'ed. */
char *test_azurite_blob_url(const struct test_azurite *az, int port, const char *container,
                            const char *blob, const char *query);

/* The value of the sig parameter of @query ("" if none), URL-decoded, into @out. For tests
 * checking that a signature appears nowhere. */
void test_azurite_sas_signature(const char *query, char *out, size_t size);
