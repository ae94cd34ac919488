/* SPDX-License-Identifier: MIT */
/*
 * The C half of bench/run-blob-read.sh (which see): Azurite and blobs through the test harness
 * (tests/lib/test_azurite.h), the blob exposed as a FUSE file through libencfs, and the time
 * to the first byte through it.
 *
 *   blob_read serve  --dir DIR [--on-disk]            Azurite until SIGTERM; "port N" on stdout
 *   blob_read upload --port P --file F --blob NAME    block blob in container "bench"; the SAS
 *                                                     URL (read, 1 day) on stdout
 *   blob_read mount  --url URL --dir DIR [cache opts] FUSE file until SIGTERM; "ready FILE"
 *   blob_read ttfb   --url URL --dir DIR [cache opts] [-n N]
 *                    seconds from blob_open to the first 4 KiB read through a fresh FUSE
 *                    mount, N times: "ttfb median min max"
 * cache opts: --block-size BYTES --capacity BLOCKS --readahead BLOCKS --threads N
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "cleanup.h"
#include "encfs.h"
#include "test_azurite.h"

#define CONTAINER "bench"
#define TTFB_MAX_RUNS 50

static const char *prog = "blob_read";
static struct test_azurite az = {.pid = -1};

static void usage(FILE *f)
{
	fprintf(f, "usage: %s serve|upload|mount|ttfb OPTIONS (see bench/blob_read.c)\n", prog);
}

/* SIGTERM and SIGINT blocked in this thread and those it creates (FUSE's), for sigwait(). */
static void block_stop_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* Block until SIGTERM or SIGINT. */
static void wait_for_stop(void)
{
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigwait(&set, &sig);
}

static int cmd_serve(int argc, char **argv)
{
	const char *dir = NULL;
	bool on_disk = false;
	const struct bench_opt opts[] = {
	        {"dir", 0, BENCH_OPT_STRING, &dir, 0, 0, true, NULL},
	        {"on-disk", 0, BENCH_OPT_FLAG, &on_disk, 0, 0, false, NULL},
	};

	if (bench_parse_options(prog, argc, argv, opts, ELEMENTSOF(opts), usage) < 0)
		return 2;
	if (!test_azurite_bin()) {
		fprintf(stderr,
		        "%s: azurite-blob not found (run tools/install-deps.sh or set "
		        "AZURITE_BLOB_BIN)\n",
		        prog);
		return 1;
	}
	if (test_azurite_start(&az, dir, !on_disk) < 0 ||
	    test_azurite_create_container(&az, CONTAINER, false) < 0)
		return 1;
	block_stop_signals(); /* only now: Azurite must not inherit them blocked */
	printf("port %d\n", az.port);
	fflush(stdout);
	wait_for_stop();
	return test_azurite_stop(&az) < 0 ? 1 : 0;
}

static int cmd_upload(int argc, char **argv)
{
	const char *file = NULL, *blob = NULL;
	long port = 0;
	const struct bench_opt opts[] = {
	        {"port", 0, BENCH_OPT_LONG, &port, 1, 65535, true, NULL},
	        {"file", 0, BENCH_OPT_STRING, &file, 0, 0, true, NULL},
	        {"blob", 0, BENCH_OPT_STRING, &blob, 0, 0, true, NULL},
	};
	_cleanup_free_ char *sas = NULL, *url = NULL;
	_cleanup_close_ int fd = -1;
	struct stat st;

	if (bench_parse_options(prog, argc, argv, opts, ELEMENTSOF(opts), usage) < 0)
		return 2;
	az.port = (int)port;
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, file, strerror(errno));
		return 1;
	}
	if (test_azurite_put_block_blob_fd(&az, CONTAINER, blob, fd, (uint64_t)st.st_size) < 0)
		return 1;
	sas = test_azurite_blob_sas(CONTAINER, blob, "r", time(NULL) + 86400, NULL);
	url = sas ? test_azurite_blob_url(&az, 0, CONTAINER, blob, sas) : NULL;
	if (!url)
		return 1;
	printf("%s\n", url);
	return 0;
}

struct expose_opts {
	const char *url, *dir;
	long block_size, capacity, readahead, threads, runs;
};

static size_t parse_expose(int argc, char **argv, struct expose_opts *e, bool with_runs)
{
	const struct bench_opt opts[] = {
	        {"url", 0, BENCH_OPT_STRING, &e->url, 0, 0, true, NULL},
	        {"dir", 0, BENCH_OPT_STRING, &e->dir, 0, 0, true, NULL},
	        {"block-size", 0, BENCH_OPT_LONG, &e->block_size, 4096, 64L << 20, false, NULL},
	        {"capacity", 0, BENCH_OPT_LONG, &e->capacity, 1, 1L << 20, false, NULL},
	        {"readahead", 0, BENCH_OPT_LONG, &e->readahead, 1, 4096, false, NULL},
	        {"threads", 0, BENCH_OPT_LONG, &e->threads, 1, 256, false, NULL},
	        {"runs", 'n', BENCH_OPT_LONG, &e->runs, 1, TTFB_MAX_RUNS, false, NULL},
	};

	return bench_parse_options(prog, argc, argv, opts, ELEMENTSOF(opts) - !with_runs, usage) < 0
	               ? 0
	               : 1;
}

struct exposed {
	struct blob *blob;
	struct block_cache *cache;
	struct blob_fuse *fuse;
};

static void unexpose(struct exposed *x)
{
	struct skr_error err = {0};

	if (x->fuse && blob_fuse_unmount(x->fuse, &err) < 0)
		fprintf(stderr, "%s: unmount: %s\n", prog, err.msg);
	block_cache_free(x->cache);
	blob_close(x->blob);
	memset(x, 0, sizeof(*x));
}

static int expose(const struct expose_opts *e, struct exposed *x)
{
	struct blob_options o = {.url = e->url};
	struct block_cache_options co = {.block_size = (size_t)e->block_size,
	                                 .capacity_blocks = (size_t)e->capacity,
	                                 .readahead_blocks = (unsigned)e->readahead,
	                                 .fetch_threads = (unsigned)e->threads};
	struct skr_error err = {0};

	memset(x, 0, sizeof(*x));
	if (blob_open(&o, &x->blob, &err) < 0 ||
	    block_cache_new(x->blob, &co, &x->cache, &err) < 0 ||
	    blob_fuse_mount(x->cache, e->dir, false, &x->fuse, &err) < 0) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		unexpose(x);
		return -1;
	}
	return 0;
}

static int cmd_mount(int argc, char **argv)
{
	struct expose_opts e = {0};
	struct block_cache_stats s;
	struct exposed x;

	if (!parse_expose(argc, argv, &e, false))
		return 2;
	block_stop_signals();
	if (expose(&e, &x) < 0)
		return 1;
	printf("ready %s\n", blob_fuse_file(x.fuse));
	fflush(stdout);
	wait_for_stop();
	block_cache_get_stats(x.cache, &s);
	fprintf(stderr,
	        "cache: %llu hits, %llu misses, %llu blocks read ahead, %llu MiB fetched, "
	        "%llu evictions\n",
	        (unsigned long long)s.hits, (unsigned long long)s.misses,
	        (unsigned long long)s.readahead_blocks, (unsigned long long)(s.fetched_bytes >> 20),
	        (unsigned long long)s.evictions);
	unexpose(&x);
	return 0;
}

static int cmd_ttfb(int argc, char **argv)
{
	struct expose_opts e = {.runs = 5};
	double t[TTFB_MAX_RUNS];
	char buf[4096];

	if (!parse_expose(argc, argv, &e, true))
		return 2;
	for (long i = 0; i < e.runs; i++) {
		double t0 = bench_now_ms();
		struct exposed x;
		int fd;
		ssize_t k;

		if (expose(&e, &x) < 0)
			return 1;
		fd = open(blob_fuse_file(x.fuse), O_RDONLY | O_CLOEXEC);
		k = fd < 0 ? -1 : read(fd, buf, sizeof(buf));
		t[i] = (bench_now_ms() - t0) / 1000.0;
		if (fd >= 0)
			close(fd);
		unexpose(&x);
		if (k != (ssize_t)sizeof(buf)) {
			fprintf(stderr, "%s: first read through FUSE: %s\n", prog,
			        k < 0 ? strerror(errno) : "short");
			return 1;
		}
	}
	bench_sort(t, (size_t)e.runs);
	printf("ttfb %.4f %.4f %.4f\n", bench_percentile(t, (size_t)e.runs, 50), t[0],
	       t[e.runs - 1]);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "serve") == 0)
		return cmd_serve(argc - 1, argv + 1);
	if (strcmp(argv[1], "upload") == 0)
		return cmd_upload(argc - 1, argv + 1);
	if (strcmp(argv[1], "mount") == 0)
		return cmd_mount(argc - 1, argv + 1);
	if (strcmp(argv[1], "ttfb") == 0)
		return cmd_ttfb(argc - 1, argv + 1);
	usage(stderr);
	return 2;
}
