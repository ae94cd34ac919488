/* SPDX-License-Identifier: MIT */
/*
 * Block cache (encfs.h "Block cache") over real file:// blobs: bytes equal the source at any
 * offset and length, also from concurrent threads through a cache smaller than the data; a block
 * wanted by several readers at once is fetched once; sequential reads trigger read-ahead and
 * random ones do not; a blob changed underneath fails reads with -EIO and the reason, never with
 * other bytes; writes (partial, whole-block, across blocks, at the end) reach the file through
 * eviction and flush. Over HTTP (a range server in this file): a sequential reader is served by
 * one long request that stops at the read-ahead window until the reader reads on, a seek
 * abandons it, a dropped connection resumes at the first incomplete block, a changed blob fails
 * the rest with the reason, and teardown does not wait for a silent server.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/rand.h>

#include "cleanup.h"
#include "deadline.h"
#include "encfs.h"
#include "test_fs.h"
#include "test_log.h"

static char tmpdir[] = "/tmp/test_block_cache.XXXXXX";

/* What a test opened, released by the teardown even when an assertion fails. */
static struct {
	char path[256];
	char url[300];
	uint8_t *data; /* the source bytes */
	size_t size;
	struct blob *blob;
	struct block_cache *cache;
	char mnt[128]; /* a small tmpfs a test mounted */
} W;

static int group_setup(void **state)
{
	if (!mkdtemp(tmpdir))
		return -1;
	test_fs_remove_at_exit(tmpdir);
	return 0;
}

static int teardown(void **state)
{
	block_cache_free(W.cache);
	if (W.blob)
		blob_close(W.blob);
	free(W.data);
	if (W.path[0])
		unlink(W.path);
	if (W.mnt[0] && umount2(W.mnt, MNT_DETACH) < 0)
		fprintf(stderr, "umount %s: %s\n", W.mnt, strerror(errno));
	memset(&W, 0, sizeof(W));
	return 0;
}

static void write_source(const char *name, size_t size)
{
	_cleanup_close_ int fd = -1;

	snprintf(W.path, sizeof(W.path), "%s/%s", tmpdir, name);
	snprintf(W.url, sizeof(W.url), "file://%s", W.path);
	W.size = size;
	W.data = malloc(size ? size : 1);
	assert_non_null(W.data);
	assert_int_equal(RAND_bytes(W.data, (int)size), 1);
	fd = open(W.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, W.data, size), (ssize_t)size);
}

static void open_cache(bool writable, const struct block_cache_options *o)
{
	struct blob_options bo = {.url = W.url, .writable = writable};
	struct skr_error err = {0};

	assert_int_equal(blob_open(&bo, &W.blob, &err), 0);
	if (block_cache_new(W.blob, o, &W.cache, &err) < 0)
		fail_msg("block_cache_new: %s", err.msg);
	assert_int_equal(block_cache_size(W.cache), W.size);
}

/* Read @len at @off through the cache and compare with the source. */
static void check_read(size_t len, uint64_t off)
{
	struct skr_error err = {0};
	_cleanup_free_ uint8_t *buf = malloc(len ? len : 1);
	size_t want = off >= W.size ? 0 : W.size - off < len ? W.size - off : len;
	ssize_t n;

	assert_non_null(buf);
	n = block_cache_read(W.cache, buf, len, off, &err);
	if (n < 0)
		fail_msg("read of %zu at %llu: %s", len, (unsigned long long)off, err.msg);
	assert_int_equal(n, (ssize_t)want);
	if (want && memcmp(buf, W.data + off, want) != 0)
		fail_msg("read of %zu at %llu: bytes differ from the source", len,
		         (unsigned long long)off);
}

#define KIB 1024u
#define MIB (1024u * 1024)

/* Offsets and lengths around block edges, the short last block and the end. */
static void test_read_matches_source(void **state)
{
	struct block_cache_options o = {.block_size = 64 * KIB, .capacity_blocks = 8};
	const size_t size = 3 * MIB + 12345; /* last block short */
	static const struct {
		size_t len;
		uint64_t off;
	} cases[] = {
	        {1, 0},
	        {4096, 0},
	        {64 * KIB, 0},                  /* exactly one block */
	        {64 * KIB, 64 * KIB - 1},       /* two blocks, one byte of the first */
	        {200 * KIB, 100 * KIB},         /* four blocks */
	        {2 * MIB, 512 * KIB + 3},       /* longer than the cache: batches */
	        {100, 3 * MIB + 12345 - 100},   /* the last bytes */
	        {100000, 3 * MIB + 12345 - 50}, /* past the end: short */
	        {4096, 3 * MIB + 12345},        /* at the end: 0 */
	        {4096, 3 * MIB + 20000},        /* beyond: 0 */
	        {0, 1000},                      /* nothing */
	        {3 * MIB + 12345, 0},           /* everything */
	};
	unsigned seed = 1234;

	write_source("read.img", size);
	open_cache(false, &o);
	for (size_t i = 0; i < ELEMENTSOF(cases); i++)
		check_read(cases[i].len, cases[i].off);
	for (int i = 0; i < 300; i++) {
		uint64_t off = (uint64_t)rand_r(&seed) % size;
		size_t len = (size_t)rand_r(&seed) % (300 * KIB) + 1;

		check_read(len, off);
	}
}

struct reader_arg {
	unsigned seed;
	int iterations;
	size_t max_len;
	pthread_barrier_t *start;
	size_t fixed_len; /* all threads read [0, fixed_len) when non-zero */
	int failures;
	char msg[700];
};

static void *reader(void *p)
{
	struct reader_arg *a = p;
	uint8_t *buf = malloc(a->fixed_len ? a->fixed_len : a->max_len);

	if (!buf) {
		a->failures++;
		return NULL;
	}
	if (a->start)
		pthread_barrier_wait(a->start);
	for (int i = 0; i < a->iterations; i++) {
		struct skr_error err = {0};
		uint64_t off = a->fixed_len ? 0 : (uint64_t)rand_r(&a->seed) % W.size;
		size_t len =
		        a->fixed_len ? a->fixed_len : (size_t)rand_r(&a->seed) % a->max_len + 1;
		size_t want = W.size - off < len ? W.size - off : len;
		ssize_t n = block_cache_read(W.cache, buf, len, off, &err);

		if (n != (ssize_t)want || memcmp(buf, W.data + off, want) != 0) {
			if (!a->failures)
				snprintf(a->msg, sizeof(a->msg), "read of %zu at %llu: %zd (%s)",
				         len, (unsigned long long)off, n, err.msg);
			a->failures++;
		}
	}
	free(buf);
	return NULL;
}

/* Eight threads through an 8-block cache: constant eviction, blocks shared while in flight. */
static void test_concurrent_readers(void **state)
{
	struct block_cache_options o = {.block_size = 64 * KIB, .capacity_blocks = 8};
	struct reader_arg args[8] = {0};
	pthread_t th[8];
	struct block_cache_stats st;

	write_source("concurrent.img", 4 * MIB + 777);
	open_cache(false, &o);
	for (int i = 0; i < 8; i++) {
		args[i] = (struct reader_arg){
		        .seed = 100u + (unsigned)i, .iterations = 300, .max_len = 256 * KIB};
		assert_int_equal(pthread_create(&th[i], NULL, reader, &args[i]), 0);
	}
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 8; i++)
		if (args[i].failures)
			fail_msg("reader %d: %d bad reads, first: %s", i, args[i].failures,
			         args[i].msg);
	block_cache_get_stats(W.cache, &st);
	assert_true(st.evictions > 0);
	assert_true(st.misses > 0);
}

/* Readers released together on one uncached 4 MiB block: one fetch, the others wait for it. */
static void test_block_fetched_once(void **state)
{
	struct block_cache_options o = {.block_size = 4 * MIB, .capacity_blocks = 4};
	struct reader_arg args[6] = {0};
	pthread_t th[6];
	pthread_barrier_t start;
	struct block_cache_stats st;

	write_source("once.img", 8 * MIB);
	open_cache(false, &o);
	pthread_barrier_init(&start, NULL, 6);
	for (int i = 0; i < 6; i++) {
		args[i] = (struct reader_arg){.iterations = 1, .fixed_len = 4096, .start = &start};
		assert_int_equal(pthread_create(&th[i], NULL, reader, &args[i]), 0);
	}
	for (int i = 0; i < 6; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&start);
	for (int i = 0; i < 6; i++)
		assert_int_equal(args[i].failures, 0);
	block_cache_get_stats(W.cache, &st);
	assert_int_equal(st.misses, 1);
	assert_int_equal(st.hits, 5);
	assert_int_equal(st.fetched_bytes, 4 * MIB);
}

/* A sequential scan in small reads: most blocks arrive by read-ahead, before they are read. */
static void test_sequential_reads_read_ahead(void **state)
{
	struct block_cache_options o = {
	        .block_size = 64 * KIB, .capacity_blocks = 16, .readahead_blocks = 6};
	const size_t size = 4 * MIB + 100;
	const uint64_t nblocks = (size + 64 * KIB - 1) / (64 * KIB);
	struct block_cache_stats st;

	write_source("seq.img", size);
	open_cache(false, &o);
	for (uint64_t off = 0; off < size; off += 16 * KIB)
		check_read(16 * KIB, off);
	block_cache_get_stats(W.cache, &st);
	if (st.readahead_blocks < nblocks / 2 || st.misses > nblocks / 4)
		fail_msg("read-ahead %llu blocks, misses %llu of %llu blocks",
		         (unsigned long long)st.readahead_blocks, (unsigned long long)st.misses,
		         (unsigned long long)nblocks);
	/* Every block fetched once: read-ahead did not fetch what was cached already. */
	assert_int_equal(st.fetched_bytes, size);
}

/* Scattered reads are no stream: no read-ahead, only the blocks read are fetched. */
static void test_random_reads_no_read_ahead(void **state)
{
	struct block_cache_options o = {.block_size = 64 * KIB, .capacity_blocks = 64};
	static const uint64_t offsets[] = {
	        3 * MIB, 100 * KIB, 2 * MIB + 5, 7 * MIB, 1 * MIB, 5 * MIB + 64 * KIB, 400 * KIB,
	};
	struct block_cache_stats st;

	write_source("random.img", 8 * MIB);
	open_cache(false, &o);
	for (size_t i = 0; i < ELEMENTSOF(offsets); i++)
		check_read(1000, offsets[i]);
	block_cache_get_stats(W.cache, &st);
	assert_int_equal(st.readahead_blocks, 0);
	assert_int_equal(st.misses, ELEMENTSOF(offsets));
	assert_int_equal(st.fetched_bytes, ELEMENTSOF(offsets) * 64 * KIB);
}

/* The file changed after open: cached blocks still read, others fail with -EIO and why. */
static void test_changed_blob_fails_with_eio(void **state)
{
	struct block_cache_options o = {.block_size = 64 * KIB, .capacity_blocks = 8};
	struct timespec times[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = 1000000000}};
	uint8_t buf[4096];
	struct skr_error err = {0};
	_cleanup_close_ int fd = -1;

	write_source("changed.img", 1 * MIB);
	open_cache(false, &o);
	check_read(4096, 0);
	/* Same size, new content and modification time. */
	fd = open(W.path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "changed", 7, 512 * KIB), 7);
	assert_int_equal(futimens(fd, times), 0);

	memset(buf, 0xAA, sizeof(buf));
	assert_int_equal(block_cache_read(W.cache, buf, sizeof(buf), 512 * KIB, &err), -EIO);
	assert_non_null(strstr(err.msg, "changed"));
	assert_non_null(strstr(err.msg, "524288-589823")); /* names the failed range */
	/* Not cached as a failure: every later read tries (and fails) again. */
	skr_error_clear(&err);
	assert_int_equal(block_cache_read(W.cache, buf, sizeof(buf), 512 * KIB, &err), -EIO);
	/* What was cached before the change is still served. */
	check_read(4096, 0);
}

/* The file's current bytes equal @want. */
static void check_file(const uint8_t *want, size_t size)
{
	_cleanup_free_ uint8_t *buf = malloc(size);
	_cleanup_close_ int fd = open(W.path, O_RDONLY | O_CLOEXEC);

	assert_non_null(buf);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, size, 0), (ssize_t)size);
	for (size_t i = 0; i < size; i++)
		if (buf[i] != want[i])
			fail_msg("file byte %zu is %u, expected %u", i, buf[i], want[i]);
}

static void cache_write(uint8_t *model, const void *src, size_t len, uint64_t off)
{
	struct skr_error err = {0};
	ssize_t n = block_cache_write(W.cache, src, len, off, &err);

	if (n < 0)
		fail_msg("write of %zu at %llu: %s", len, (unsigned long long)off, err.msg);
	assert_int_equal(n, (ssize_t)len);
	memcpy(model + off, src, len);
}

/* Partial, whole-block and cross-block writes through a 4-block cache, then flush. */
static void test_write_back(void **state)
{
	struct block_cache_options o = {.block_size = 64 * KIB, .capacity_blocks = 4};
	const size_t size = 2 * MIB + 1536; /* a page blob's multiple of 512, last block short */
	_cleanup_free_ uint8_t *model = NULL;
	_cleanup_free_ uint8_t *src = malloc(MIB);
	struct block_cache_stats st;
	struct skr_error err = {0};
	unsigned seed = 99;

	assert_non_null(src);
	assert_int_equal(RAND_bytes(src, MIB), 1);
	write_source("write.img", size);
	model = malloc(size);
	assert_non_null(model);
	memcpy(model, W.data, size);
	open_cache(true, &o);

	cache_write(model, src, 10, 5);                      /* inside block 0 */
	cache_write(model, src + 100, 64 * KIB, 128 * KIB);  /* exactly block 2 */
	cache_write(model, src + 200, 200 * KIB, 300 * KIB); /* across four blocks */
	cache_write(model, src + 300, 1536, size - 1536);    /* the short last block, whole */
	cache_write(model, src + 400, 3, size - 3);          /* its last bytes */
	for (int i = 0; i < 50; i++) {
		uint64_t off = (uint64_t)rand_r(&seed) % size;
		size_t len = (size_t)rand_r(&seed) % (100 * KIB) + 1;

		if (len > size - off)
			len = size - off;
		cache_write(model, src + rand_r(&seed) % (MIB - 100 * KIB), len, off);
	}
	/* Reads see the writes before any write-back. */
	for (uint64_t off = 0; off < size; off += 96 * KIB) {
		uint8_t buf[96 * KIB];
		size_t len = size - off < sizeof(buf) ? size - off : sizeof(buf);

		assert_int_equal(block_cache_read(W.cache, buf, sizeof(buf), off, &err),
		                 (ssize_t)len);
		assert_memory_equal(buf, model + off, len);
	}
	block_cache_get_stats(W.cache, &st);
	assert_true(st.written_back_bytes > 0); /* evicting dirty blocks wrote them */
	assert_int_equal(block_cache_flush(W.cache, &err), 0);
	check_file(model, size);
	/* Nothing dirty is left: a second flush writes nothing. */
	block_cache_get_stats(W.cache, &st);
	assert_int_equal(block_cache_flush(W.cache, &err), 0);
	{
		struct block_cache_stats st2;

		block_cache_get_stats(W.cache, &st2);
		assert_int_equal(st2.written_back_bytes, st.written_back_bytes);
	}
}

struct writer_arg {
	uint8_t *model;
	uint64_t region_off;
	size_t region_len;
	unsigned seed;
	int failures;
	char msg[700];
};

static void *writer(void *p)
{
	struct writer_arg *a = p;
	uint8_t buf[20000];

	for (int i = 0; i < 200; i++) {
		struct skr_error err = {0};
		size_t len = (size_t)rand_r(&a->seed) % sizeof(buf) + 1;
		uint64_t off = a->region_off + (uint64_t)rand_r(&a->seed) % (a->region_len - len);
		ssize_t n;

		for (size_t j = 0; j < len; j++)
			buf[j] = (uint8_t)rand_r(&a->seed);
		n = block_cache_write(W.cache, buf, len, off, &err);
		if (n != (ssize_t)len) {
			snprintf(a->msg, sizeof(a->msg), "write: %zd: %s", n, err.msg);
			a->failures++;
			return NULL;
		}
		memcpy(a->model + off, buf, len);
		if (i % 50 == 49 && block_cache_flush(W.cache, &err) < 0) {
			snprintf(a->msg, sizeof(a->msg), "flush: %s", err.msg);
			a->failures++;
			return NULL;
		}
	}
	return NULL;
}

/* Writers on their own regions, sharing blocks at the region edges, readers between them. */
static void test_concurrent_writes(void **state)
{
	struct block_cache_options o = {.block_size = 16 * KIB, .capacity_blocks = 6};
	const size_t size = 1 * MIB;
	_cleanup_free_ uint8_t *model = NULL;
	struct writer_arg args[4];
	pthread_t th[4];
	struct skr_error err = {0};

	write_source("cwrite.img", size);
	model = malloc(size);
	assert_non_null(model);
	memcpy(model, W.data, size);
	open_cache(true, &o);
	for (int i = 0; i < 4; i++) {
		/* 250000-byte regions: not block-aligned, so neighbours share a block */
		args[i] = (struct writer_arg){.model = model,
		                              .region_off = (uint64_t)i * 250000,
		                              .region_len = 250000,
		                              .seed = 7u + (unsigned)i};
		assert_int_equal(pthread_create(&th[i], NULL, writer, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 4; i++)
		if (args[i].failures)
			fail_msg("writer %d: %s", i, args[i].msg);
	assert_int_equal(block_cache_flush(W.cache, &err), 0);
	check_file(model, size);
}

static void test_write_refused(void **state)
{
	struct block_cache_options o = {.block_size = 64 * KIB};
	struct skr_error err = {0};
	uint8_t buf[1024] = {0};

	write_source("ro.img", 1 * MIB);
	open_cache(false, &o);
	assert_int_equal(block_cache_write(W.cache, buf, 10, 0, &err), -EROFS);
	assert_non_null(strstr(err.msg, "read-only"));
	assert_int_equal(block_cache_flush(W.cache, &err), 0); /* nothing to do */
	teardown(state);

	write_source("end.img", 1 * MIB);
	open_cache(true, &o);
	skr_error_clear(&err);
	assert_int_equal(block_cache_write(W.cache, buf, 10, 1 * MIB, &err), -ENOSPC);
	assert_non_null(strstr(err.msg, "past the end"));
	/* Straddling the end: the part that fits, like a block device. */
	assert_int_equal(block_cache_write(W.cache, buf, sizeof(buf), 1 * MIB - 100, &err), 100);
	assert_int_equal(block_cache_flush(W.cache, &err), 0);
	memset(W.data + 1 * MIB - 100, 0, 100);
	check_file(W.data, W.size);
}

static void test_bad_options(void **state)
{
	static const struct {
		size_t block_size;
		size_t capacity;
		unsigned threads;
		const char *what;
	} cases[] = {
	        {2048, 0, 0, "block_size"},
	        {5000, 0, 0, "block_size"},
	        {128 * MIB, 0, 0, "block_size"},
	        {0, 0, 1000, "fetch_threads"},
	        {0, SIZE_MAX / 2, 0, "capacity_blocks"},
	};
	struct blob_options bo = {0};
	struct skr_error err = {0};

	write_source("opts.img", 1 * MIB + 100);
	bo.url = W.url;
	assert_int_equal(blob_open(&bo, &W.blob, &err), 0);
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct block_cache_options o = {.block_size = cases[i].block_size,
		                                .capacity_blocks = cases[i].capacity,
		                                .fetch_threads = cases[i].threads};

		skr_error_clear(&err);
		assert_int_equal(block_cache_new(W.blob, &o, &W.cache, &err), -EINVAL);
		assert_null(W.cache);
		if (!strstr(err.msg, cases[i].what))
			fail_msg("case %zu: '%s' does not name %s", i, err.msg, cases[i].what);
	}
	blob_close(W.blob);

	/* Writable, but not a whole number of 512-byte pages. */
	bo.writable = true;
	assert_int_equal(blob_open(&bo, &W.blob, &err), 0);
	skr_error_clear(&err);
	assert_int_equal(block_cache_new(W.blob, NULL, &W.cache, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "multiple of 512"));
}

/*
 * Write-back fails (the blob's file system is full): flush reports it with the reason, and the
 * data stays in the cache, dirty, instead of being dropped.
 */
static void test_write_back_failure_keeps_data(void **state)
{
	struct block_cache_options o = {.block_size = 64 * KIB, .capacity_blocks = 64};
	_cleanup_free_ uint8_t *src = malloc(2 * MIB);
	_cleanup_free_ uint8_t *back = malloc(2 * MIB);
	struct skr_error err = {0};
	_cleanup_close_ int fd = -1;

	if (geteuid() != 0)
		skip(); /* mounting the small file system needs root */
	assert_non_null(src);
	assert_non_null(back);
	assert_int_equal(RAND_bytes(src, 2 * MIB), 1);
	snprintf(W.mnt, sizeof(W.mnt), "%s/small", tmpdir);
	assert_int_equal(mkdir(W.mnt, 0700), 0);
	assert_int_equal(mount("tmpfs", W.mnt, "tmpfs", 0, "size=1m"), 0);
	/* A 4 MiB sparse file on 1 MiB of space: writing it fills the file system. */
	snprintf(W.path, sizeof(W.path), "%s/sparse.img", W.mnt);
	snprintf(W.url, sizeof(W.url), "file://%s", W.path);
	fd = open(W.path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 4 * MIB), 0);
	W.size = 4 * MIB;
	open_cache(true, &o);

	assert_int_equal(block_cache_write(W.cache, src, 2 * MIB, 0, &err), 2 * MIB);
	assert_int_equal(block_cache_flush(W.cache, &err), -EIO);
	if (!strstr(err.msg, "writing back") || !strstr(err.msg, "No space left"))
		fail_msg("flush error: %s", err.msg);
	/* Still there, still dirty: a second flush tries again (and fails again). */
	assert_int_equal(block_cache_read(W.cache, back, 2 * MIB, 0, &err), 2 * MIB);
	assert_memory_equal(back, src, 2 * MIB);
	skr_error_clear(&err);
	assert_int_equal(block_cache_flush(W.cache, &err), -EIO);
	block_cache_free(W.cache);
	W.cache = NULL;
	blob_close(W.blob);
	W.blob = NULL;
}

/* Defaults: 512 KiB blocks; an empty blob reads as nothing. */
static void test_defaults_and_empty_blob(void **state)
{
	uint8_t buf[16];
	struct skr_error err = {0};
	struct block_cache_stats st;

	write_source("default.img", 3 * 512 * KIB + 1);
	open_cache(false, NULL);
	check_read(512 * KIB + 2, 512 * KIB - 1);
	block_cache_get_stats(W.cache, &st);
	assert_int_equal(st.fetched_bytes, 3 * 512 * KIB); /* blocks 0-2, not the 1-byte 4th */
	teardown(state);

	write_source("empty.img", 0);
	open_cache(false, NULL);
	assert_int_equal(block_cache_read(W.cache, buf, sizeof(buf), 0, &err), 0);
}

/* ---- the sequential stream over HTTP ------------------------------------------------------- */

/*
 * A range server for the stream tests, W.data as a blob at /img: HEAD, and GETs of a
 * "Range: bytes=A-B" (206, or 412 when If-Match is not the current ETag), one request per
 * connection. The scripted test_http_server answers fixed bodies and cannot cut one short, so
 * this one serves whatever range is asked for, records each GET, and can break the first GET
 * longer than @cut_min_len bytes after @cut_after bytes of its body: close the connection, or
 * stall (send nothing more until stopped), optionally changing the blob's ETag at that moment.
 */
#define RS_MAX_CONNS 64
struct rs_get {
	uint64_t start, end; /* the range asked for */
	size_t sent;         /* body bytes written */
	bool done;           /* answered (or given up on) */
	bool cut_short;      /* the client went away before the body ended */
};

static struct range_server {
	int lfd;
	uint16_t port;
	pthread_t acceptor;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	char etag[32];
	/* the fault */
	size_t cut_min_len, cut_after;
	bool cut_stall, cut_done;
	char cut_etag[32]; /* "" = keep the ETag */
	struct rs_get gets[RS_MAX_CONNS];
	unsigned ngets;
	int fds[RS_MAX_CONNS];
	pthread_t threads[RS_MAX_CONNS];
	unsigned nconns;
} RS = {.lfd = -1};

static bool send_all(int fd, const void *p, size_t n)
{
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k <= 0)
			return false;
		p = (const uint8_t *)p + k;
		n -= (size_t)k;
	}
	return true;
}

/* The value of header @name in the request head @req, copied into @out ("" when absent). */
static void rs_header(const char *req, const char *name, char *out, size_t size)
{
	size_t nl = strlen(name);

	out[0] = '\0';
	for (const char *l = strstr(req, "\r\n"); l && l[2] != '\r'; l = strstr(l + 2, "\r\n"))
		if (strncasecmp(l + 2, name, nl) == 0 && l[2 + nl] == ':') {
			const char *v = l + 3 + nl, *e = strstr(v, "\r\n");

			while (*v == ' ')
				v++;
			snprintf(out, size, "%.*s", (int)(e - v), v);
			return;
		}
}

static void *rs_serve(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char req[4096], hdr[512], range[128], match[64], etag[32];
	unsigned long long a, b;
	size_t n = 0;
	unsigned k;

	while (n < sizeof(req) - 1) {
		ssize_t r = read(fd, req + n, sizeof(req) - 1 - n);

		if (r <= 0)
			return NULL;
		n += (size_t)r;
		req[n] = '\0';
		if (strstr(req, "\r\n\r\n"))
			break;
	}
	pthread_mutex_lock(&RS.lock);
	memcpy(etag, RS.etag, sizeof(etag));
	pthread_mutex_unlock(&RS.lock);
	if (strncmp(req, "HEAD ", 5) == 0) {
		int h = snprintf(hdr, sizeof(hdr),
		                 "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nETag: %s\r\n"
		                 "Accept-Ranges: bytes\r\nConnection: close\r\n\r\n",
		                 W.size, etag);

		send_all(fd, hdr, (size_t)h);
		return NULL;
	}
	rs_header(req, "Range", range, sizeof(range));
	rs_header(req, "If-Match", match, sizeof(match));
	if (sscanf(range, "bytes=%llu-%llu", &a, &b) != 2 || b < a || b >= W.size) {
		static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
		                          "Connection: close\r\n\r\n";

		send_all(fd, bad, sizeof(bad) - 1);
		return NULL;
	}
	pthread_mutex_lock(&RS.lock);
	k = RS.ngets < RS_MAX_CONNS ? RS.ngets++ : RS_MAX_CONNS - 1;
	RS.gets[k] = (struct rs_get){.start = a, .end = b};
	pthread_mutex_unlock(&RS.lock);
	if (match[0] && strcmp(match, etag) != 0) {
		int h = snprintf(hdr, sizeof(hdr),
		                 "HTTP/1.1 412 Precondition Failed\r\nContent-Length: 0\r\n"
		                 "ETag: %s\r\nConnection: close\r\n\r\n",
		                 etag);

		send_all(fd, hdr, (size_t)h);
	} else {
		size_t len = (size_t)(b - a + 1), sent = 0, cut = SIZE_MAX;
		bool ok;
		int h = snprintf(hdr, sizeof(hdr),
		                 "HTTP/1.1 206 Partial Content\r\nContent-Length: %zu\r\n"
		                 "Content-Range: bytes %llu-%llu/%zu\r\nETag: %s\r\n"
		                 "Connection: close\r\n\r\n",
		                 len, a, b, W.size, etag);

		pthread_mutex_lock(&RS.lock);
		if (RS.cut_min_len && !RS.cut_done && len > RS.cut_min_len) {
			RS.cut_done = true;
			cut = RS.cut_after;
		}
		pthread_mutex_unlock(&RS.lock);
		ok = send_all(fd, hdr, (size_t)h);
		while (ok && sent < len) {
			size_t chunk = len - sent < 64 * 1024 ? len - sent : 64 * 1024;

			if (sent + chunk > cut)
				chunk = cut - sent;
			if (chunk == 0)
				break;
			ok = send_all(fd, W.data + a + sent, chunk);
			if (ok)
				sent += chunk;
			pthread_mutex_lock(&RS.lock);
			RS.gets[k].sent = sent;
			pthread_mutex_unlock(&RS.lock);
		}
		pthread_mutex_lock(&RS.lock);
		if (sent == cut) {
			if (RS.cut_etag[0])
				memcpy(RS.etag, RS.cut_etag, sizeof(RS.etag));
			while (RS.cut_stall && !RS.stop)
				pthread_cond_wait(&RS.cond, &RS.lock);
		}
		RS.gets[k].cut_short = !ok;
		pthread_mutex_unlock(&RS.lock);
	}
	shutdown(fd, SHUT_RDWR); /* the end of a cut body too; rs_stop() closes */
	pthread_mutex_lock(&RS.lock);
	RS.gets[k].done = true;
	pthread_cond_broadcast(&RS.cond);
	pthread_mutex_unlock(&RS.lock);
	return NULL;
}

static void *rs_accept(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept4(RS.lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0)
			return NULL;
		pthread_mutex_lock(&RS.lock);
		if (RS.stop || RS.nconns == RS_MAX_CONNS) {
			pthread_mutex_unlock(&RS.lock);
			close(fd);
			continue;
		}
		RS.fds[RS.nconns] = fd;
		if (pthread_create(&RS.threads[RS.nconns], NULL, rs_serve, (void *)(intptr_t)fd) ==
		    0)
			RS.nconns++;
		else
			close(fd);
		pthread_mutex_unlock(&RS.lock);
	}
}

static void rs_start(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);

	pthread_mutex_init(&RS.lock, NULL);
	pthread_cond_init(&RS.cond, NULL);
	snprintf(RS.etag, sizeof(RS.etag), "\"v1\"");
	RS.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(RS.lfd >= 0);
	assert_int_equal(bind(RS.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(RS.lfd, 16), 0);
	assert_int_equal(getsockname(RS.lfd, (struct sockaddr *)&sa, &sl), 0);
	RS.port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&RS.acceptor, NULL, rs_accept, NULL), 0);
	snprintf(W.url, sizeof(W.url), "http://127.0.0.1:%u/img", RS.port);
}

/* Stop the server (the teardown calls it after the cache is gone, even when a test failed). */
static void rs_stop(void)
{
	if (RS.lfd < 0)
		return;
	pthread_mutex_lock(&RS.lock);
	RS.stop = true;
	pthread_cond_broadcast(&RS.cond);
	for (unsigned i = 0; i < RS.nconns; i++)
		shutdown(RS.fds[i], SHUT_RDWR);
	pthread_mutex_unlock(&RS.lock);
	shutdown(RS.lfd, SHUT_RDWR);
	pthread_join(RS.acceptor, NULL);
	close(RS.lfd);
	for (unsigned i = 0; i < RS.nconns; i++) {
		pthread_join(RS.threads[i], NULL);
		close(RS.fds[i]);
	}
	pthread_cond_destroy(&RS.cond);
	pthread_mutex_destroy(&RS.lock);
	memset(&RS, 0, sizeof(RS));
	RS.lfd = -1;
}

/* The cache and its connections first, then the server (its threads send from W.data). */
static int stream_teardown(void **state)
{
	block_cache_free(W.cache);
	W.cache = NULL;
	if (W.blob)
		blob_close(W.blob);
	W.blob = NULL;
	rs_stop();
	return teardown(state);
}

/* @size random bytes served over HTTP, and a read-only cache of 64 KiB blocks over them. */
static void open_stream_cache(size_t size, unsigned timeout_ms)
{
	struct block_cache_options o = {.block_size = 64 * KIB,
	                                .capacity_blocks = 32,
	                                .readahead_blocks = 16,
	                                .fetch_threads = 2};
	struct blob_options bo = {.backoff_ms = 1, .max_attempts = 3, .timeout_ms = timeout_ms};
	struct skr_error err = {0};

	W.size = size;
	W.data = malloc(size);
	assert_non_null(W.data);
	assert_int_equal(RAND_bytes(W.data, (int)size), 1);
	rs_start();
	bo.url = W.url;
	if (blob_open(&bo, &W.blob, &err) < 0)
		fail_msg("blob_open: %s", err.msg);
	if (block_cache_new(W.blob, &o, &W.cache, &err) < 0)
		fail_msg("block_cache_new: %s", err.msg);
}

static struct rs_get rs_get_copy(unsigned i)
{
	struct rs_get g;

	pthread_mutex_lock(&RS.lock);
	g = RS.gets[i];
	pthread_mutex_unlock(&RS.lock);
	return g;
}

static unsigned rs_gets(void)
{
	unsigned n;

	pthread_mutex_lock(&RS.lock);
	n = RS.ngets;
	pthread_mutex_unlock(&RS.lock);
	return n;
}

/* The first GET (from the @from'th) running to the blob's end, longer than one block: a
 * stream; UINT_MAX if none. */
static unsigned find_stream_get(unsigned from)
{
	for (unsigned i = from; i < rs_gets(); i++) {
		struct rs_get g = rs_get_copy(i);

		if (g.end == W.size - 1 && g.end - g.start + 1 > 64 * KIB)
			return i;
	}
	return UINT_MAX;
}

/* Wait (up to @ms) until GET @i has been answered or given up on. */
static bool rs_wait_done(unsigned i, unsigned ms)
{
	struct timespec until = deadline_after_ms(CLOCK_REALTIME, ms);
	bool done;

	pthread_mutex_lock(&RS.lock);
	while (!RS.gets[i].done && pthread_cond_timedwait(&RS.cond, &RS.lock, &until) == 0)
		;
	done = RS.gets[i].done;
	pthread_mutex_unlock(&RS.lock);
	return done;
}

static long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/*
 * A sequential reader is served by one long request, filling the blocks of the read-ahead
 * window and no more while the reader pauses (back-pressure), then the rest as it reads on.
 */
static void test_stream_sequential(void **state)
{
	const size_t size = 8 * MIB + 1000; /* a short last block */
	const uint64_t nblocks = (size + 64 * KIB - 1) / (64 * KIB);
	struct block_cache_stats st;
	unsigned s;

	open_stream_cache(size, 5000);
	for (uint64_t off = 0; off < 1 * MIB; off += 32 * KIB)
		check_read(32 * KIB, off);
	s = find_stream_get(0);
	assert_int_not_equal(s, UINT_MAX);
	/* The reader pauses: the stream fills the window (16 blocks past the read) and waits. */
	usleep(300 * 1000);
	block_cache_get_stats(W.cache, &st);
	if (st.fetched_bytes > 1 * MIB + 17 * 64 * KIB)
		fail_msg("%llu bytes fetched for a reader at 1 MiB with a 1 MiB window",
		         (unsigned long long)st.fetched_bytes);
	for (uint64_t off = 1 * MIB; off < size; off += 32 * KIB)
		check_read(32 * KIB, off);
	block_cache_get_stats(W.cache, &st);
	/* Every block fetched once, nearly all by the stream, with one request. */
	assert_int_equal(st.fetched_bytes, size);
	if (st.readahead_blocks < nblocks - 4 || st.misses > 4)
		fail_msg("read-ahead %llu blocks, misses %llu of %llu blocks",
		         (unsigned long long)st.readahead_blocks, (unsigned long long)st.misses,
		         (unsigned long long)nblocks);
	assert_true(rs_wait_done(s, 5000));
	assert_false(rs_get_copy(s).cut_short);
	assert_int_equal(find_stream_get(s + 1), UINT_MAX);
	if (rs_gets() > 4)
		fail_msg("%u GETs for one sequential read", rs_gets());
}

/* A seek abandons the stream at once (not after the idle time); reading on sequentially
 * from the new place starts a new one there. */
static void test_stream_seek_abandons(void **state)
{
	const size_t size = 32 * MIB;
	unsigned s, s2;
	long t0;

	open_stream_cache(size, 5000);
	for (uint64_t off = 0; off < 1 * MIB; off += 64 * KIB)
		check_read(64 * KIB, off);
	s = find_stream_get(0);
	assert_int_not_equal(s, UINT_MAX);
	t0 = now_ms();
	check_read(4096, 20 * MIB); /* the seek */
	if (!rs_wait_done(s, 1500))
		fail_msg("the stream's request still open %ld ms after a seek", now_ms() - t0);
	assert_true(rs_get_copy(s).cut_short);
	for (uint64_t off = 20 * MIB + 4096; off < 24 * MIB; off += 64 * KIB)
		check_read(64 * KIB, off);
	s2 = find_stream_get(s + 1);
	assert_int_not_equal(s2, UINT_MAX);
	if (rs_get_copy(s2).start < 20 * MIB)
		fail_msg("the new stream starts at %llu, before the seek",
		         (unsigned long long)rs_get_copy(s2).start);
	/* Back to what was read before the seek: still right. */
	check_read(1 * MIB, 0);
}

/* A connection dropped mid-stream: the next request starts at the first incomplete block. */
static void test_stream_drop_resumes(void **state)
{
	const size_t size = 8 * MIB;
	struct rs_get g, g2;
	unsigned s, s2;

	RS.cut_min_len = 64 * KIB;
	RS.cut_after = 1 * MIB + 1000; /* 16 blocks and 1000 bytes of the 17th */
	test_log_capture_start(LOG_LEVEL_WARN);
	open_stream_cache(size, 5000);
	for (uint64_t off = 0; off < size; off += 32 * KIB)
		check_read(32 * KIB, off);
	test_log_capture_stop();
	s = find_stream_get(0);
	assert_int_not_equal(s, UINT_MAX);
	g = rs_get_copy(s);
	s2 = find_stream_get(s + 1);
	assert_int_not_equal(s2, UINT_MAX);
	g2 = rs_get_copy(s2);
	assert_int_equal(g.sent, 1 * MIB + 1000);
	assert_int_equal(g2.start, g.start + 16 * 64 * KIB);
	assert_true(test_log_has("attempt 2 of 3"));
}

/* The blob changed while streaming (a dropped connection, and the retry finds another ETag):
 * what arrived before stays right, the rest fails with EIO naming the change, no retries. */
static void test_stream_etag_change(void **state)
{
	const size_t size = 8 * MIB;
	uint8_t buf[32 * KIB];
	struct skr_error err = {0};
	uint64_t off;
	struct rs_get g;
	unsigned s;

	RS.cut_min_len = 64 * KIB;
	RS.cut_after = 1 * MIB + 1000;
	snprintf(RS.cut_etag, sizeof(RS.cut_etag), "\"v2\"");
	test_log_capture_start(LOG_LEVEL_WARN);
	open_stream_cache(size, 5000);
	for (off = 0; off < size; off += sizeof(buf)) {
		ssize_t n = block_cache_read(W.cache, buf, sizeof(buf), off, &err);

		if (n < 0)
			break;
		assert_int_equal(n, sizeof(buf));
		assert_memory_equal(buf, W.data + off, sizeof(buf));
	}
	test_log_capture_stop();
	assert_true(off < size);
	assert_int_equal(err.code, -EIO);
	assert_non_null(strstr(err.msg, "blob changed since it was opened"));
	s = find_stream_get(0);
	assert_int_not_equal(s, UINT_MAX);
	g = rs_get_copy(s);
	/* The 16 blocks that arrived whole were served. */
	assert_true(off >= g.start + 16 * 64 * KIB);
	/* 412 is final: never retried (a read of the range may try once more, read-ahead too). */
	for (unsigned i = s + 1; i < rs_gets(); i++)
		for (unsigned j = i + 1; j < rs_gets(); j++) {
			struct rs_get a = rs_get_copy(i), b = rs_get_copy(j);

			if (a.sent == 0 && b.sent == 0 && a.start == b.start && a.end == b.end)
				fail_msg("bytes %llu-%llu asked for again after a 412",
				         (unsigned long long)a.start, (unsigned long long)a.end);
		}
}

/* Teardown while the stream waits for a silent server returns promptly (and leaks nothing:
 * the sanitizer build checks). */
static void test_stream_teardown(void **state)
{
	const size_t size = 8 * MIB;
	unsigned s;
	long t0, took;

	RS.cut_min_len = 64 * KIB;
	RS.cut_after = 512 * KIB + 1000;
	RS.cut_stall = true;
	open_stream_cache(size, 20000);
	for (uint64_t off = 0; off < 256 * KIB; off += 64 * KIB)
		check_read(64 * KIB, off);
	s = find_stream_get(0);
	assert_int_not_equal(s, UINT_MAX);
	/* Let the stream reach the stall. */
	for (int i = 0; i < 200 && rs_get_copy(s).sent < RS.cut_after; i++)
		usleep(10 * 1000);
	assert_int_equal(rs_get_copy(s).sent, RS.cut_after);
	t0 = now_ms();
	block_cache_free(W.cache);
	W.cache = NULL;
	took = now_ms() - t0;
	if (took > 3000)
		fail_msg("teardown took %ld ms with the stream waiting for the server", took);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(test_read_matches_source, teardown),
	        cmocka_unit_test_teardown(test_concurrent_readers, teardown),
	        cmocka_unit_test_teardown(test_block_fetched_once, teardown),
	        cmocka_unit_test_teardown(test_sequential_reads_read_ahead, teardown),
	        cmocka_unit_test_teardown(test_random_reads_no_read_ahead, teardown),
	        cmocka_unit_test_teardown(test_changed_blob_fails_with_eio, teardown),
	        cmocka_unit_test_teardown(test_write_back, teardown),
	        cmocka_unit_test_teardown(test_concurrent_writes, teardown),
	        cmocka_unit_test_teardown(test_write_back_failure_keeps_data, teardown),
	        cmocka_unit_test_teardown(test_write_refused, teardown),
	        cmocka_unit_test_teardown(test_bad_options, teardown),
	        cmocka_unit_test_teardown(test_defaults_and_empty_blob, teardown),
	        cmocka_unit_test_teardown(test_stream_sequential, stream_teardown),
	        cmocka_unit_test_teardown(test_stream_seek_abandons, stream_teardown),
	        cmocka_unit_test_teardown(test_stream_drop_resumes, stream_teardown),
	        cmocka_unit_test_teardown(test_stream_etag_change, stream_teardown),
	        cmocka_unit_test_teardown(test_stream_teardown, stream_teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
