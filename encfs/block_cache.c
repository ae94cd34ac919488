/* SPDX-License-Identifier: MIT */
/*
 * Block cache over a blob (encfs.h "Block cache"): fixed-size blocks in an LRU of bounded
 * capacity, read-ahead of sequential streams (one long range request on a stream thread where
 * the back end can stream and the cache is read-only, else runs fetched by a pool of fetch
 * threads as parallel range requests), and write-back of dirty blocks for read-write mounts.
 *
 * Locking: one mutex guards the table, the LRU list, block states, reference counts, the fetch
 * queue, the stream's state and the statistics; it is never held during I/O. A block being filled (fetched from the
 * blob, or overwritten whole) is in the table in state FILLING, so a second reader of it waits
 * for that fill instead of fetching it again. Block contents are guarded by a per-block rwlock:
 * readers and write-back copy out under the read lock, writers copy in under the write lock.
 * A reference count pins a block (no eviction, no reuse) while a thread works on it unlocked.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blob_internal.h"
#include "block_cache_internal.h"
#include "cleanup.h"
#include "deadline.h"
#include "encfs.h"
#include "log.h"

#define BLOCK_SIZE_DEFAULT (512u * 1024) /* the Go sidecar's azmount block size */
#define BLOCK_SIZE_MIN 4096u
#define BLOCK_SIZE_MAX (64u * 1024 * 1024)
/*
 * 32 MiB of cache, 16 MiB of it read ahead in runs of up to 8 MiB (FETCH_RUN_MAX_BYTES): range
 * requests stay in flight on the fetch threads, which is what keeps a high-latency store (Azure)
 * streaming, and few large requests suit a store with a per-request cost (Azurite: ~5 ms of CPU
 * per request whatever its size). Measured (bench/run-blob-read.sh, 1 GiB from Azurite on the
 * 2-core host, FUSE/curl, median of 3 interleaved rounds): 8 blocks read ahead (the Go
 * sidecar's depth) ~0.5; 32 blocks ~0.75; 64 blocks (64 MiB more memory per image) 0.6-0.97,
 * within the noise of the shared host; again with runs fetched straight into the blocks and each
 * block ready as soon as its bytes are in (median of 8 interleaved rounds): 32 blocks 0.67,
 * 64 blocks (capacity 96 or 128) 0.65-0.66, no gain for the memory. Streamed (one request per
 * sequential reader, per-block wake-ups; 8 rounds against the runs build in the same run, a
 * heavily shared host): median 0.80 (0.60-1.06) against 0.66 (0.48-1.00), Azurite's CPU per GiB
 * down to curl's (~2.2 s against 2.6-4.7 s with runs). With 32 a mounted image
 * uses about 40 MiB at most (64 cached blocks plus SPARE_BLOCKS_MAX idle ones and the stream's
 * one-block discard buffer; runs need no buffers of their own), more only while reads pin
 * blocks beyond the capacity; "cache" in
 * EncfsSideCarArgs raises it.
 */
#define CAPACITY_DEFAULT 64u
#define READAHEAD_DEFAULT 32u
#define FETCH_THREADS_DEFAULT 4u
#define FETCH_THREADS_MAX 64u
/* Blocks one read pins at once (longer reads are served in batches of this many). */
#define READ_BATCH_MAX 32u
/* Idle blocks kept for reuse: a fresh 512 KiB buffer costs 128 page faults. */
#define SPARE_BLOCKS_MAX 16u
/*
 * Consecutive missing blocks are fetched with one range request of up to this many bytes (a
 * "run"): per-request costs dominate small ranges. Measured with bench/run-blob-read.sh (1 GiB,
 * Azurite on this 2-core host): Azurite spends ~5 ms of CPU per request whatever its size, so
 * 2048 requests of 512 KiB cost 13 s of its CPU against 2.3 s for 64 of 16 MiB; 8 MiB runs
 * keep that overhead under a tenth of the transfer. On Azure a request costs a round trip
 * (~10-30 ms) instead, and several runs in flight keep parallel connections busy.
 */
#define FETCH_RUN_MAX_BYTES (8u * 1024 * 1024)
/*
 * Streaming (see "the sequential stream" below): how long the stream waits for its reader to
 * read on before it drops its request (a new one starts when the reader comes back), and how
 * many cached blocks in its way it reads past (their bytes discarded) rather than starting a
 * new request after them.
 */
#define STREAM_IDLE_MS 2000
#define STREAM_SKIP_MAX_BYTES (4u * 1024 * 1024)

enum block_state {
	BLOCK_FILLING = 0, /* being fetched or overwritten whole: wait for it */
	BLOCK_READY,
	BLOCK_FAILED, /* the fetch failed; already out of the table; err_* say why */
};

struct block {
	struct block *hash_next;
	struct block *lru_prev, *lru_next; /* lru_prev towards the most recently used end */
	struct block *queue_next;
	struct block *run_next; /* the next block of the run this one is fetched with */
	uint64_t index;
	uint8_t *data;
	size_t len; /* block_size, or less for the last block */
	enum block_state state;
	unsigned refs;
	bool in_table;
	bool dirty;
	bool writing_back;
	bool readahead_unread; /* fetched by read-ahead and not read yet: the stream's marker */
	bool queued_demand;    /* in the work queue because a reader (or a flush) waits for it */
	bool queued_writeback; /* in the work queue to be written back (a flush in parallel) */
	bool streamed;         /* assigned to the sequential stream (in its list or being filled) */
	int writeback_code;    /* how the queued write-back ended, for the flush waiting on it */
	uint64_t dirty_gen;    /* bumped by every write, to see writes racing a write-back */
	unsigned waiters;      /* threads waiting for it to leave FILLING */
	pthread_cond_t filled; /* it left FILLING (with c->lock) */
	pthread_rwlock_t data_lock;
	struct skr_error fail; /* why the fetch failed, or the queued write-back */
};

struct block_cache {
	struct blob *blob;
	uint64_t size;
	uint64_t nblocks;
	size_t block_size;
	size_t capacity;
	unsigned readahead;
	size_t run_blocks; /* the most blocks one range request fetches */
	unsigned nthreads;
	bool writable;

	pthread_mutex_t lock;
	pthread_cond_t changed; /* a write-back finished */
	pthread_cond_t work;    /* the fetch queue got work, or stop */

	struct block **buckets;
	size_t nbuckets;                   /* a power of two */
	size_t count;                      /* blocks in the table */
	struct block *lru_head, *lru_tail; /* head = most recently used */
	struct block *spare;               /* unused blocks for reuse, linked by hash_next */
	size_t nspare;

	struct block *queue_head, *queue_tail;
	bool stop;
	pthread_t threads[FETCH_THREADS_MAX];
	unsigned started;

	/* Sequential-stream detection for read-ahead. */
	uint64_t seq_expect_off; /* where the stream's next read would start */
	uint64_t seq_last_block; /* the furthest block the stream read */
	bool seq_any;            /* seq_last_block is valid */
	unsigned seq_streak;     /* consecutive sequential reads */
	uint64_t ra_next;        /* first block not yet scheduled for read-ahead */

	/* The sequential stream: read-ahead through one long range request (read-only caches). */
	struct {
		bool enabled;
		bool started;
		pthread_t thread;
		pthread_cond_t cond;       /* blocks assigned, a seek, or stop (CLOCK_MONOTONIC) */
		struct block *head, *tail; /* assigned and not yet being filled, ascending indices,
		                              linked by queue_next; FILLING, one reference each */
		struct block *cur;         /* being filled by the request (its reference) */
		bool cur_discard;          /* the request's bytes go to the discard buffer */
		uint64_t pos;              /* the block whose bytes the request delivers next */
		uint64_t gen;              /* bumped by a seek: the running request is abandoned */
		uint64_t req_gen;          /* gen when the running request started */
		uint8_t *discard;          /* block_size bytes for blocks cached already */
	} st;

	struct block_cache_stats stats;
};

/* ---- blocks, table, LRU (all under c->lock) ------------------------------------------------ */

static size_t block_len(const struct block_cache *c, uint64_t index)
{
	uint64_t off = index * c->block_size;

	return c->size - off < c->block_size ? (size_t)(c->size - off) : c->block_size;
}

static size_t bucket_of(const struct block_cache *c, uint64_t index)
{
	/* Fibonacci hashing: sequential indices spread over the buckets. */
	return (size_t)((index * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & (c->nbuckets - 1);
}

static struct block *table_lookup(struct block_cache *c, uint64_t index)
{
	for (struct block *b = c->buckets[bucket_of(c, index)]; b; b = b->hash_next)
		if (b->index == index)
			return b;
	return NULL;
}

static void lru_unlink(struct block_cache *c, struct block *b)
{
	if (b->lru_prev)
		b->lru_prev->lru_next = b->lru_next;
	else
		c->lru_head = b->lru_next;
	if (b->lru_next)
		b->lru_next->lru_prev = b->lru_prev;
	else
		c->lru_tail = b->lru_prev;
	b->lru_prev = b->lru_next = NULL;
}

static void lru_push_head(struct block_cache *c, struct block *b)
{
	b->lru_prev = NULL;
	b->lru_next = c->lru_head;
	if (c->lru_head)
		c->lru_head->lru_prev = b;
	else
		c->lru_tail = b;
	c->lru_head = b;
}

static void lru_touch(struct block_cache *c, struct block *b)
{
	if (c->lru_head == b)
		return;
	lru_unlink(c, b);
	lru_push_head(c, b);
}

static void table_insert(struct block_cache *c, struct block *b)
{
	size_t h = bucket_of(c, b->index);

	b->hash_next = c->buckets[h];
	c->buckets[h] = b;
	b->in_table = true;
	c->count++;
	lru_push_head(c, b);
}

static void table_remove(struct block_cache *c, struct block *b)
{
	struct block **p = &c->buckets[bucket_of(c, b->index)];

	while (*p != b)
		p = &(*p)->hash_next;
	*p = b->hash_next;
	b->hash_next = NULL;
	b->in_table = false;
	c->count--;
	lru_unlink(c, b);
}

static void block_destroy(struct block *b)
{
	pthread_cond_destroy(&b->filled);
	pthread_rwlock_destroy(&b->data_lock);
	free(b->data);
	free(b);
}

/* A new block for @index, in state FILLING with one reference, not yet in the table. */
static struct block *block_get_unused(struct block_cache *c, uint64_t index)
{
	struct block *b = c->spare;

	if (b) {
		c->spare = b->hash_next;
		c->nspare--;
	} else {
		b = calloc(1, sizeof(*b));
		if (!b)
			return NULL;
		b->data = malloc(c->block_size);
		if (!b->data) {
			free(b);
			return NULL;
		}
		pthread_rwlock_init(&b->data_lock, NULL);
		pthread_cond_init(&b->filled, NULL);
	}
	b->hash_next = b->lru_prev = b->lru_next = b->queue_next = b->run_next = NULL;
	b->index = index;
	b->len = block_len(c, index);
	b->state = BLOCK_FILLING;
	b->refs = 1;
	b->in_table = false;
	b->dirty = b->writing_back = b->readahead_unread = b->queued_demand = false;
	b->queued_writeback = b->streamed = false;
	b->writeback_code = 0;
	b->dirty_gen = 0;
	skr_error_clear(&b->fail);
	return b;
}

static void block_release(struct block_cache *c, struct block *b)
{
	if (c->nspare < SPARE_BLOCKS_MAX) {
		b->hash_next = c->spare;
		c->spare = b;
		c->nspare++;
	} else {
		block_destroy(b);
	}
}

static void block_unref(struct block_cache *c, struct block *b)
{
	if (--b->refs == 0 && !b->in_table)
		block_release(c, b);
}

/* Evict clean, unpinned blocks from the LRU end until at most @target remain. */
static void evict_clean(struct block_cache *c, size_t target)
{
	struct block *b = c->lru_tail;

	while (b && c->count > target) {
		struct block *prev = b->lru_prev;

		if (b->refs == 0 && b->state == BLOCK_READY && !b->dirty && !b->writing_back) {
			table_remove(c, b);
			block_release(c, b);
			c->stats.evictions++;
		}
		b = prev;
	}
}

/* ---- fetching ------------------------------------------------------------------------------ */

/* @b left FILLING: wake the threads waiting for it (each block has its own condition: a
 * stream completes a block every few hundred microseconds, and waking every waiting reader for
 * each one cost a tenth of our CPU in futex calls and context switches). Under c->lock. */
static void fill_wake(struct block *b)
{
	if (b->waiters)
		pthread_cond_broadcast(&b->filled);
}

/* A block left FILLING: record the outcome, wake waiters, drop the filler's reference. */
static void fill_done(struct block_cache *c, struct block *b, int r, const struct skr_error *e)
{
	if (r < 0) {
		b->state = BLOCK_FAILED;
		b->fail = *e;
		if (b->fail.code == 0)
			b->fail.code = r;
		/* Out of the table: the next reader of this range tries again. */
		if (b->in_table)
			table_remove(c, b);
	} else {
		b->state = BLOCK_READY;
	}
	fill_wake(b);
	block_unref(c, b);
}

/* Fetch @b (FILLING, one reference owned by the caller, which this consumes). Unlocked. */
static void fetch_block(struct block_cache *c, struct block *b)
{
	struct skr_error e = {0};
	uint64_t off = b->index * c->block_size;
	int r = blob_read(c->blob, b->data, b->len, off, &e);

	if (r < 0)
		log_warn("block cache: fetching block %" PRIu64 " (bytes %" PRIu64 "-%" PRIu64
		         ") of %s failed: %s",
		         b->index, off, off + b->len - 1, blob_display_url(c->blob),
		         skr_error_message(&e));
	pthread_mutex_lock(&c->lock);
	if (r == 0)
		c->stats.fetched_bytes += b->len;
	fill_done(c, b, r, &e);
	pthread_mutex_unlock(&c->lock);
}

/* A run being fetched: its blocks in order, and how many of them are ready already. */
struct run_fetch {
	struct block_cache *c;
	struct block **blocks;
	unsigned done;
};

/* Block @seg of the run holds its bytes: readers waiting for it need not wait for the rest. */
static void run_block_done(void *userdata, unsigned seg)
{
	struct run_fetch *rf = userdata;
	struct block_cache *c = rf->c;

	pthread_mutex_lock(&c->lock);
	c->stats.fetched_bytes += rf->blocks[seg]->len;
	fill_done(c, rf->blocks[seg], 0, NULL);
	rf->done = seg + 1;
	pthread_mutex_unlock(&c->lock);
}

/*
 * Fetch the run headed by @head (consecutive blocks linked by run_next, each FILLING with one
 * reference owned by the caller, which this consumes) with one range request. Unlocked. The
 * bytes land straight in the blocks' buffers (blob_readv()): blocks are evicted one by one, so
 * they cannot share one allocation, and a copy through one run buffer cost a tenth of our CPU.
 * Each block is ready as soon as its bytes are in: a reader that caught up with the read-ahead
 * waits for its block, not for the end of an 8 MiB request.
 */
static void fetch_run(struct block_cache *c, struct block *head)
{
	struct skr_error e = {0};
	uint64_t first = head->index, off = first * c->block_size;
	_cleanup_free_ struct iovec *iov = NULL;
	_cleanup_free_ struct block **blocks = NULL;
	struct run_fetch rf = {.c = c};
	struct block *b, *next;
	unsigned n = 0;
	size_t total = 0;
	int r;

	if (!head->run_next) {
		fetch_block(c, head);
		return;
	}
	for (b = head; b; b = b->run_next)
		n++;
	iov = calloc(n, sizeof(*iov));
	blocks = calloc(n, sizeof(*blocks));
	if (!iov || !blocks) {
		/* No memory for the vector: block by block. */
		for (b = head; b; b = next) {
			next = b->run_next;
			b->run_next = NULL;
			fetch_block(c, b);
		}
		return;
	}
	n = 0;
	for (b = head; b; b = next) {
		next = b->run_next;
		b->run_next =
		        NULL; /* a ready block may be evicted and reused before the run ends */
		blocks[n] = b;
		iov[n++] = (struct iovec){.iov_base = b->data, .iov_len = b->len};
		total += b->len;
	}
	rf.blocks = blocks;
	r = blob_readv(c->blob, iov, n, off, run_block_done, &rf, &e);
	if (r < 0 && rf.done == n)
		r = 0; /* every block got its checked bytes before the failure */
	if (r < 0)
		log_warn("block cache: fetching blocks %" PRIu64 "-%" PRIu64 " (bytes %" PRIu64
		         "-%" PRIu64 ") of %s failed: %s",
		         first + rf.done, first + n - 1, off + (uint64_t)rf.done * c->block_size,
		         off + total - 1, blob_display_url(c->blob), skr_error_message(&e));
	pthread_mutex_lock(&c->lock);
	for (unsigned i = rf.done; i < n; i++) {
		if (r == 0)
			c->stats.fetched_bytes += blocks[i]->len;
		fill_done(c, blocks[i], r, &e);
	}
	pthread_mutex_unlock(&c->lock);
}

/* Blocks gathered into runs of consecutive indices (under c->lock). */
struct run_builder {
	struct block *head, *tail;
	size_t n;
};

/* Add @b (whose index follows the current run's last, or starts a new run). Full runs are
 * passed to @flush. */
static void run_add(struct block_cache *c, struct run_builder *rb, struct block *b,
                    void (*flush)(struct block_cache *c, struct block *head, void *userdata),
                    void *userdata)
{
	if (rb->head && (rb->tail->index + 1 != b->index || rb->n >= c->run_blocks)) {
		flush(c, rb->head, userdata);
		rb->head = NULL;
	}
	b->run_next = NULL;
	if (!rb->head) {
		rb->head = rb->tail = b;
		rb->n = 1;
	} else {
		rb->tail->run_next = b;
		rb->tail = b;
		rb->n++;
	}
}

static void queue_push(struct block_cache *c, struct block *b, bool demand)
{
	b->queue_next = NULL;
	b->queued_demand = demand;
	if (demand) {
		/* Ahead of read-ahead work, behind other readers' blocks. */
		struct block **p = &c->queue_head;

		while (*p && (*p)->queued_demand)
			p = &(*p)->queue_next;
		b->queue_next = *p;
		*p = b;
		if (!b->queue_next)
			c->queue_tail = b;
	} else {
		if (c->queue_tail)
			c->queue_tail->queue_next = b;
		else
			c->queue_head = b;
		c->queue_tail = b;
	}
	pthread_cond_signal(&c->work);
}

static int block_write_back(struct block_cache *c, struct block *b, struct skr_error *err);

/* Fetches blocks for readers and read-ahead, and writes dirty blocks back for a flush. */
static void *work_thread(void *arg)
{
	struct block_cache *c = arg;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		struct block *b;

		while (!c->stop && !c->queue_head)
			pthread_cond_wait(&c->work, &c->lock);
		if (c->stop)
			break;
		b = c->queue_head;
		c->queue_head = b->queue_next;
		if (!c->queue_head)
			c->queue_tail = NULL;
		b->queue_next = NULL;
		if (b->queued_writeback) {
			b->queued_writeback = false;
			if (b->dirty && !b->writing_back) {
				skr_error_clear(&b->fail);
				b->writeback_code = block_write_back(c, b, &b->fail);
			}
			pthread_cond_broadcast(&c->changed);
			block_unref(c, b);
			continue;
		}
		pthread_mutex_unlock(&c->lock);
		fetch_run(c, b);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* ---- write-back ---------------------------------------------------------------------------- */

/*
 * Write @b back to the blob in pieces the blob accepts (≤ 4 MiB, multiples of 512: blocks are
 * 512-aligned and a writable blob's size is a multiple of 512). Called and returns with c->lock
 * held; drops it for the I/O. @b must not be writing back already.
 */
static int block_write_back(struct block_cache *c, struct block *b, struct skr_error *err)
{
	uint64_t gen = b->dirty_gen;
	uint64_t off = b->index * c->block_size;
	struct skr_error e = {0};
	int r = 0;

	b->writing_back = true;
	b->refs++;
	pthread_mutex_unlock(&c->lock);

	pthread_rwlock_rdlock(&b->data_lock);
	for (size_t done = 0; done < b->len && r == 0;) {
		size_t n = b->len - done < BLOB_MAX_WRITE ? b->len - done : BLOB_MAX_WRITE;

		r = blob_write(c->blob, b->data + done, n, off + done, &e);
		done += n;
	}
	pthread_rwlock_unlock(&b->data_lock);

	pthread_mutex_lock(&c->lock);
	b->writing_back = false;
	if (r == 0) {
		c->stats.written_back_bytes += b->len;
		/* A write that raced us bumped the generation: it stays dirty for the next pass. */
		if (b->dirty_gen == gen)
			b->dirty = false;
	} else {
		log_error("block cache: writing back block %" PRIu64 " (bytes %" PRIu64 "-%" PRIu64
		          ") of %s failed: %s",
		          b->index, off, off + b->len - 1, blob_display_url(c->blob),
		          skr_error_message(&e));
		skr_error_set(err, -EIO, "writing back bytes %" PRIu64 "-%" PRIu64 " failed: %s",
		              off, off + b->len - 1, skr_error_message(&e));
		r = -EIO;
	}
	pthread_cond_broadcast(&c->changed);
	block_unref(c, b);
	return r;
}

/*
 * Make room for @need new blocks: evict clean blocks, and when only dirty ones are left, write
 * the least recently used back first. Called with c->lock held (dropped during write-backs).
 */
static int make_room(struct block_cache *c, size_t need, struct skr_error *err)
{
	size_t target = c->capacity > need ? c->capacity - need : 0;

	for (;;) {
		struct block *victim = NULL;
		int r;

		evict_clean(c, target);
		if (c->count <= target)
			return 0;
		for (struct block *b = c->lru_tail; b; b = b->lru_prev)
			if (b->refs == 0 && b->state == BLOCK_READY && b->dirty &&
			    !b->writing_back) {
				victim = b;
				break;
			}
		if (!victim)
			return 0; /* everything else is pinned: over capacity until unpinned */
		r = block_write_back(c, victim, err);
		if (r < 0)
			return r;
	}
}

/* ---- the sequential stream ----------------------------------------------------------------- */

/*
 * Read-ahead of a sequential reader through ONE long range request, from the first block
 * read ahead to the end of the blob, on a thread of its own: the bytes land in the blocks as
 * they arrive, and each block is ready (its waiters woken) as soon as it is complete. Runs cost
 * a request each, and a store may charge per request more than per byte (Azurite: ~5 ms of
 * CPU each, so 128 runs of 8 MiB per GiB stood between us and curl's speed).
 *
 * Read-ahead assigns the stream the blocks of its window, FILLING in the table as before
 * (readers of them wait for them), in ascending order; the request fills them in that order.
 * Back-pressure: when every assigned block is filled the request waits in libcurl's write
 * callback (the server stalls on a full TCP window) until the reader reads on and read-ahead
 * assigns more; after STREAM_IDLE_MS of that it is dropped. Bytes of a block that is not
 * assigned (cached already, or fetched by a reader) are discarded, or a new request starts
 * after them when there are many. A seek abandons the running request (the blocks assigned
 * and not yet filled are dropped, or handed to the fetch threads when a reader waits for
 * one); so does teardown (they fail with ECANCELED then).
 *
 * Failures go through the blob's retry policy (blob_retry_run(), reads conditional on the
 * ETag seen at open): a retry resumes at the first incomplete block, blocks already filled
 * keep their checked bytes, and when it cannot succeed (or the blob changed) every block
 * assigned fails like a failed run: readers get EIO with the reason, and the next read of
 * them tries again. Only read-only caches stream: with our own writes the ETag moves, and a
 * long-running answer would carry bytes from before a write.
 */

/* A block assigned to the stream that it will not fill (under c->lock): to the fetch threads
 * when a reader waits for it, else out of the table (the next reader of it fetches it). */
static void stream_drop(struct block_cache *c, struct block *b)
{
	b->streamed = false;
	b->queue_next = b->run_next = NULL;
	if (b->refs > 1) {
		queue_push(c, b, true);
		return;
	}
	if (b->in_table)
		table_remove(c, b);
	block_unref(c, b);
}

/* Assign @b (FILLING, one reference for the stream) as the next block to stream. */
static void stream_assign(struct block_cache *c, struct block *b)
{
	b->streamed = true;
	b->queue_next = NULL;
	if (c->st.tail)
		c->st.tail->queue_next = b;
	else
		c->st.head = b;
	c->st.tail = b;
	pthread_cond_signal(&c->st.cond);
}

static struct block *stream_pop(struct block_cache *c)
{
	struct block *b = c->st.head;

	c->st.head = b->queue_next;
	if (!c->st.head)
		c->st.tail = NULL;
	b->queue_next = NULL;
	return b;
}

static void stream_push_front(struct block_cache *c, struct block *b)
{
	b->queue_next = c->st.head;
	c->st.head = b;
	if (!c->st.tail)
		c->st.tail = b;
}

/* A seek: abandon the running request and the blocks assigned to it (under c->lock). */
static void stream_cancel(struct block_cache *c)
{
	if (!c->st.enabled)
		return;
	while (c->st.head)
		stream_drop(c, stream_pop(c));
	__atomic_store_n(&c->st.gen, c->st.gen + 1, __ATOMIC_RELAXED);
	pthread_cond_signal(&c->st.cond);
}

static bool stream_cancelled(void *userdata)
{
	struct block_cache *c = userdata;

	return __atomic_load_n(&c->stop, __ATOMIC_RELAXED) ||
	       __atomic_load_n(&c->st.gen, __ATOMIC_RELAXED) != c->st.req_gen;
}

/* The sink's next(): the buffer of the block whose bytes come next (see blob_stream_sink). */
static void *stream_next(void *userdata, size_t *len)
{
	struct block_cache *c = userdata;
	uint64_t skip_max = STREAM_SKIP_MAX_BYTES / c->block_size;
	struct timespec deadline = {0};
	void *buf = NULL;

	pthread_mutex_lock(&c->lock);
	while (!c->stop && c->st.gen == c->st.req_gen && c->st.pos < c->nblocks) {
		struct block *b = c->st.head;

		if (b && b->index == c->st.pos) {
			c->st.cur = stream_pop(c);
			buf = b->data;
			*len = b->len;
			break;
		}
		if (b && b->index > c->st.pos && b->index - c->st.pos <= skip_max) {
			/* Not ours to fill: cached already, or a reader fetched it. */
			c->st.cur_discard = true;
			buf = c->st.discard;
			*len = block_len(c, c->st.pos);
			break;
		}
		if (b)
			break; /* far ahead (or behind): a new request starts there */
		/* Every assigned block is filled: wait for the reader to read on. */
		if (deadline.tv_sec == 0)
			deadline = deadline_after_ms(CLOCK_MONOTONIC, STREAM_IDLE_MS);
		if (pthread_cond_timedwait(&c->st.cond, &c->lock, &deadline) == ETIMEDOUT &&
		    !c->st.head)
			break; /* the reader stopped: drop the request */
	}
	if (buf)
		c->st.pos++;
	pthread_mutex_unlock(&c->lock);
	return buf;
}

/* The sink's done(): the block handed out last is complete. */
static void stream_done(void *userdata)
{
	struct block_cache *c = userdata;

	pthread_mutex_lock(&c->lock);
	if (c->st.cur_discard) {
		c->st.cur_discard = false;
	} else {
		struct block *b = c->st.cur;

		c->st.cur = NULL;
		b->streamed = false;
		c->stats.fetched_bytes += b->len;
		fill_done(c, b, 0, NULL);
	}
	pthread_mutex_unlock(&c->lock);
}

/* One attempt (blob_retry_run()): a request from the first incomplete assigned block on. */
static int stream_attempt(void *userdata, struct blob_attempt *a, struct skr_error *err)
{
	struct block_cache *c = userdata;
	struct blob *b = c->blob;
	const struct blob_stream_sink sink = {
	        .next = stream_next,
	        .done = stream_done,
	        .cancelled = stream_cancelled,
	        .userdata = c,
	};
	char etag[BLOB_ETAG_MAX];
	uint64_t off, len;

	pthread_mutex_lock(&c->lock);
	if (c->stop || c->st.gen != c->st.req_gen) {
		pthread_mutex_unlock(&c->lock);
		return 0; /* the thread disposes of the block in flight */
	}
	if (c->st.cur) /* the last attempt failed in its middle: again from its start */
		stream_push_front(c, c->st.cur);
	c->st.cur = NULL;
	c->st.cur_discard = false;
	if (!c->st.head) {
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	c->st.pos = c->st.head->index;
	pthread_mutex_unlock(&c->lock);

	pthread_mutex_lock(&b->lock);
	memcpy(etag, b->etag, sizeof(etag));
	pthread_mutex_unlock(&b->lock);
	off = c->st.pos * c->block_size;
	len = c->size - off;
	if (len > SIZE_MAX)
		len = SIZE_MAX / c->block_size * c->block_size;
	return b->be->stream(b, off, (size_t)len, etag, &sink, a, err);
}

static void *stream_thread(void *arg)
{
	struct block_cache *c = arg;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		struct skr_error e = {0};
		uint64_t first, off;
		char what[96];
		struct block *cur;
		int r;

		while (!c->stop && !c->st.head)
			pthread_cond_wait(&c->st.cond, &c->lock);
		if (c->stop)
			break;
		c->st.req_gen = c->st.gen;
		first = c->st.head->index;
		off = first * c->block_size;
		pthread_mutex_unlock(&c->lock);

		log_debug("block cache: streaming %s from byte %" PRIu64, blob_display_url(c->blob),
		          off);
		snprintf(what, sizeof(what), "read of %" PRIu64 " bytes at %" PRIu64, c->size - off,
		         off);
		r = blob_retry_run(&c->blob->o, blob_display_url(c->blob), what, stream_attempt, c,
		                   &e);
		if (r < 0)
			skr_error_prefix(&e, "blob %s: ", blob_display_url(c->blob));

		pthread_mutex_lock(&c->lock);
		cur = c->st.cur;
		c->st.cur = NULL;
		c->st.cur_discard = false;
		if (cur && r == 0 && !c->stop && c->st.gen != c->st.req_gen)
			stream_drop(c, cur); /* a seek abandoned it */
		else if (cur)
			stream_push_front(c,
			                  cur); /* failed below, cancelled at teardown, or again */
		if (r < 0 && (cur || c->st.head)) {
			uint64_t from = cur ? cur->index : c->st.head->index, to = from;

			for (struct block *b = c->st.head; b; b = b->queue_next)
				to = b->index;
			log_warn("block cache: fetching blocks %" PRIu64 "-%" PRIu64
			         " (bytes %" PRIu64 "-%" PRIu64 ") of %s failed: %s",
			         from, to, from * c->block_size,
			         to * c->block_size + block_len(c, to) - 1,
			         blob_display_url(c->blob), skr_error_message(&e));
			while (c->st.head) {
				struct block *b = stream_pop(c);

				b->streamed = false;
				fill_done(c, b, r, &e);
			}
		}
	}
	/* Teardown: nothing will fill what is left. */
	if (c->st.cur) {
		stream_push_front(c, c->st.cur);
		c->st.cur = NULL;
	}
	while (c->st.head) {
		struct block *b = stream_pop(c);

		b->streamed = false;
		fill_done(c, b, -ECANCELED, &(struct skr_error){0});
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* ---- read-ahead ---------------------------------------------------------------------------- */

/*
 * Note a read of blocks [@first, @last] at @off; true when it continues a sequential stream.
 * Reads that arrive slightly out of order (the kernel sends read-ahead requests in parallel)
 * neither extend nor break the stream; a jump elsewhere breaks it.
 */
static bool seq_note(struct block_cache *c, uint64_t off, size_t len, uint64_t first, uint64_t last)
{
	bool advancing =
	        !c->seq_any ? off == 0 : off == c->seq_expect_off || first == c->seq_last_block + 1;
	bool nearby = c->seq_any && first + 1 >= c->seq_last_block && first <= c->seq_last_block;

	if (advancing) {
		c->seq_streak++;
	} else if (!nearby) {
		c->seq_streak = 0;
		c->ra_next = 0;
		stream_cancel(c);
	}
	if (advancing || !nearby || last > c->seq_last_block) {
		c->seq_last_block = last;
		c->seq_expect_off = off + len;
		c->seq_any = true;
	}
	return c->seq_streak >= 2;
}

static void queue_readahead_run(struct block_cache *c, struct block *head, void *userdata)
{
	(void)userdata;
	queue_push(c, head, false);
}

/*
 * Keep the blocks after @last in flight: schedule up to c->readahead blocks past it, without
 * evicting anything dirty or pinned. They go to the stream when the cache streams (the window
 * topped up at every read: assigning a block costs no request); else consecutive blocks go out
 * as runs (one range request each), in one batch once less than half the window is left.
 */
static void readahead_schedule(struct block_cache *c, uint64_t last)
{
	uint64_t from = c->ra_next > last + 1 ? c->ra_next : last + 1;
	uint64_t to = last + c->readahead;
	struct run_builder rb = {0};

	if (c->readahead == 0 || from >= c->nblocks)
		return;
	if (!c->st.enabled && from > last + c->readahead / 2 + 1)
		return; /* enough in flight already */
	if (to >= c->nblocks)
		to = c->nblocks - 1;
	for (uint64_t i = from; i <= to; i++) {
		struct block *b;

		if (table_lookup(c, i)) {
			c->ra_next = i + 1;
			if (rb.head)
				queue_readahead_run(c, rb.head, NULL);
			rb.head = NULL;
			continue;
		}
		evict_clean(c, c->capacity - 1);
		if (c->count >= c->capacity)
			break; /* the next read tries again from here */
		b = block_get_unused(c, i);
		if (!b)
			break;
		c->ra_next = i + 1;
		b->readahead_unread = true;
		table_insert(c, b);
		c->stats.readahead_blocks++;
		if (c->st.enabled)
			stream_assign(c, b);
		else
			run_add(c, &rb, b, queue_readahead_run, NULL);
	}
	if (rb.head)
		queue_readahead_run(c, rb.head, NULL);
}

/* ---- reading ------------------------------------------------------------------------------- */

/* Wait until @b (pinned) is no longer FILLING. Under c->lock. */
static void wait_filled(struct block_cache *c, struct block *b)
{
	if (b->state != BLOCK_FILLING)
		return;
	b->waiters++;
	while (b->state == BLOCK_FILLING)
		pthread_cond_wait(&b->filled, &c->lock);
	b->waiters--;
}

static int fail_io(struct skr_error *err, const struct block_cache *c, const struct block *b)
{
	uint64_t off = b->index * c->block_size;

	return skr_error_set(err, -EIO, "reading bytes %" PRIu64 "-%" PRIu64 " of %s failed: %s",
	                     off, off + b->len - 1, blob_display_url(c->blob),
	                     skr_error_message(&b->fail));
}

/* Blocks of one read, pinned (a reference each) and filled. */
struct pinned {
	struct block *blocks[READ_BATCH_MAX];
	size_t n;
};

static void queue_demand_run(struct block_cache *c, struct block *head, void *userdata)
{
	struct block **mine = userdata;

	/* The reader fetches the first run itself; the fetch threads take the others. */
	if (!*mine)
		*mine = head;
	else
		queue_push(c, head, true);
}

/*
 * Pin the blocks holding [@off, @off + @len), which lie within at most READ_BATCH_MAX blocks
 * (and the blob), fetching the missing ones, and wait until all are filled. On failure the
 * blocks stay pinned too (unpin_batch() releases them either way).
 */
static int pin_batch(struct block_cache *c, size_t len, uint64_t off, struct pinned *p,
                     struct skr_error *err)
{
	uint64_t first = off / c->block_size, last = (off + len - 1) / c->block_size;
	size_t n = (size_t)(last - first + 1);
	struct block *mine = NULL; /* the run of missing blocks this thread fetches itself */
	struct run_builder rb = {0};
	bool marker = false, sequential;
	int r = 0;

	pthread_mutex_lock(&c->lock);
	sequential = seq_note(c, off, len, first, last);
	for (size_t i = 0; i < n; i++) {
		struct block *b = table_lookup(c, first + i);

		if (b) {
			b->refs++;
			lru_touch(c, b);
			c->stats.hits++;
			if (b->readahead_unread) {
				b->readahead_unread = false;
				marker = true;
			}
		} else {
			b = block_get_unused(c, first + i);
			if (!b) {
				r = skr_error_set(err, -ENOMEM, "block cache: out of memory");
				n = i;
				break;
			}
			table_insert(c, b);
			b->refs++; /* ours; the other one belongs to whoever fetches it */
			c->stats.misses++;
			run_add(c, &rb, b, queue_demand_run, &mine);
		}
		p->blocks[i] = b;
	}
	p->n = n;
	if (rb.head)
		queue_demand_run(c, rb.head, &mine);
	evict_clean(c, c->capacity);
	if (r == 0 && (sequential || marker))
		readahead_schedule(c, last);
	pthread_mutex_unlock(&c->lock);

	if (mine)
		fetch_run(c, mine);

	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < n; i++) {
		struct block *b = p->blocks[i];

		wait_filled(c, b);
		if (b->state == BLOCK_FAILED && r == 0)
			r = fail_io(err, c, b);
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

static void unpin_batch(struct block_cache *c, struct pinned *p)
{
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < p->n; i++)
		block_unref(c, p->blocks[i]);
	p->n = 0;
	/* Blocks pinned above may have kept the cache over capacity; dirty ones cost a write. */
	if (c->count > c->capacity) {
		struct skr_error e = {0};

		if (make_room(c, 0, &e) < 0)
			log_warn("block cache: over capacity: %s", skr_error_message(&e));
	}
	pthread_mutex_unlock(&c->lock);
}

/* The part of pinned block @b within [@off, @off + @len): its offset in the block and length. */
static size_t block_part(const struct block_cache *c, const struct block *b, size_t len,
                         uint64_t off, size_t *from)
{
	uint64_t boff = b->index * c->block_size;
	uint64_t f = off > boff ? off - boff : 0;
	uint64_t to = off + len < boff + b->len ? off + len - boff : b->len;

	*from = (size_t)f;
	return (size_t)(to - f);
}

/* Read [@off, @off + @len) lying within at most READ_BATCH_MAX blocks (and the blob). */
static int read_batch(struct block_cache *c, uint8_t *buf, size_t len, uint64_t off,
                      struct skr_error *err)
{
	struct pinned p;
	int r = pin_batch(c, len, off, &p, err);

	for (size_t i = 0, done = 0; r == 0 && i < p.n; i++) {
		struct block *b = p.blocks[i];
		size_t from, n = block_part(c, b, len, off, &from);

		pthread_rwlock_rdlock(&b->data_lock);
		memcpy(buf + done, b->data + from, n);
		pthread_rwlock_unlock(&b->data_lock);
		done += n;
	}
	unpin_batch(c, &p);
	return r;
}

/* The most blocks one read pins at once: half the cache, or the others could not be fetched. */
static size_t batch_blocks(const struct block_cache *c)
{
	size_t batch = c->capacity / 2 < READ_BATCH_MAX ? c->capacity / 2 : READ_BATCH_MAX;

	return batch ? batch : 1;
}

/* @len clipped to the blob's end and to SSIZE_MAX; 0 at or past the end. */
static size_t clip_read(const struct block_cache *c, size_t len, uint64_t off)
{
	if (off >= c->size)
		return 0;
	if (len > c->size - off)
		len = (size_t)(c->size - off);
	return len > SSIZE_MAX ? SSIZE_MAX : len;
}

ssize_t block_cache_read(struct block_cache *c, void *buf, size_t len, uint64_t off,
                         struct skr_error *err)
{
	size_t batch = batch_blocks(c);
	size_t done = 0;

	len = clip_read(c, len, off);
	while (done < len) {
		uint64_t pos = off + done;
		/* Up to the end of the batch's last block. */
		uint64_t end = (pos / c->block_size + batch) * c->block_size;
		size_t n = end - pos < len - done ? (size_t)(end - pos) : len - done;
		int r = read_batch(c, (uint8_t *)buf + done, n, pos, err);

		if (r < 0)
			return r;
		done += n;
	}
	return (ssize_t)done;
}

ssize_t block_cache_read_in_place(struct block_cache *c, size_t len, uint64_t off,
                                  block_cache_consume_fn consume, void *userdata,
                                  struct skr_error *err)
{
	struct iovec iov[READ_BATCH_MAX];
	struct pinned p;
	int r;

	len = clip_read(c, len, off);
	if (len == 0) {
		consume(userdata, NULL, 0);
		return 0;
	}
	if ((off + len - 1) / c->block_size - off / c->block_size + 1 > batch_blocks(c)) {
		/* More blocks than one batch pins (tiny blocks): through a copy. */
		_cleanup_free_ uint8_t *buf = malloc(len);
		ssize_t n;

		if (!buf)
			return skr_error_set(err, -ENOMEM, "block cache: out of memory");
		n = block_cache_read(c, buf, len, off, err);
		if (n >= 0) {
			iov[0] = (struct iovec){.iov_base = buf, .iov_len = (size_t)n};
			consume(userdata, iov, 1);
		}
		return n;
	}
	r = pin_batch(c, len, off, &p, err);
	if (r == 0) {
		/* Read locks for the whole reply: a write must not change the bytes under it. */
		for (size_t i = 0; i < p.n; i++) {
			size_t from;

			pthread_rwlock_rdlock(&p.blocks[i]->data_lock);
			iov[i].iov_len = block_part(c, p.blocks[i], len, off, &from);
			iov[i].iov_base = p.blocks[i]->data + from;
		}
		consume(userdata, iov, (int)p.n);
		for (size_t i = 0; i < p.n; i++)
			pthread_rwlock_unlock(&p.blocks[i]->data_lock);
	}
	unpin_batch(c, &p);
	return r < 0 ? r : (ssize_t)len;
}

/* ---- writing ------------------------------------------------------------------------------- */

/*
 * The block @index pinned for a write. When @whole (the write covers it entirely) and it is not
 * cached, it comes back FILLING without a fetch, and the caller fills it. Under c->lock.
 */
static int block_for_write(struct block_cache *c, uint64_t index, bool whole, struct block **out,
                           struct skr_error *err)
{
	for (;;) {
		struct block *b = table_lookup(c, index);
		int r;

		if (!b) {
			b = block_get_unused(c, index);
			if (!b)
				return skr_error_set(err, -ENOMEM, "block cache: out of memory");
			table_insert(c, b);
			if (whole) {
				*out = b; /* FILLING, our one reference: readers wait for our data */
				return 0;
			}
			c->stats.misses++;
			b->refs++;
			pthread_mutex_unlock(&c->lock);
			fetch_block(c, b);
			pthread_mutex_lock(&c->lock);
		} else {
			b->refs++;
			lru_touch(c, b);
			c->stats.hits++;
			wait_filled(c, b);
		}
		if (b->state == BLOCK_READY) {
			*out = b;
			return 0;
		}
		/* Someone's fetch failed. It does not matter when we overwrite the whole block:
		 * the next lookup finds nothing and we fill a new one. */
		r = whole ? 0 : fail_io(err, c, b);
		block_unref(c, b);
		if (r < 0)
			return r;
	}
}

ssize_t block_cache_write(struct block_cache *c, const void *buf, size_t len, uint64_t off,
                          struct skr_error *err)
{
	uint64_t first, last;
	size_t done = 0;
	int r;

	if (!c->writable)
		return skr_error_set(err, -EROFS, "%s is read-only (mounted without read_write)",
		                     blob_display_url(c->blob));
	if (len == 0)
		return 0;
	if (off >= c->size)
		return skr_error_set(err, -ENOSPC,
		                     "write at %" PRIu64 " is past the end of the blob (%" PRIu64
		                     " bytes; its size is fixed)",
		                     off, c->size);
	if (len > c->size - off)
		len = (size_t)(c->size - off); /* short, like a block device at its end */
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	first = off / c->block_size;
	last = (off + len - 1) / c->block_size;

	pthread_mutex_lock(&c->lock);
	/* Room first: a write that fails to make room changes nothing. */
	r = make_room(c, (size_t)(last - first + 1 < c->capacity ? last - first + 1 : c->capacity),
	              err);
	for (uint64_t i = first; r == 0 && i <= last; i++) {
		uint64_t boff = i * c->block_size;
		size_t blen = block_len(c, i);
		uint64_t from = off > boff ? off - boff : 0;
		uint64_t to = off + len < boff + blen ? off + len - boff : blen;
		struct block *b = NULL;

		r = block_for_write(c, i, from == 0 && to == blen, &b, err);
		if (r < 0)
			break;
		pthread_mutex_unlock(&c->lock);
		pthread_rwlock_wrlock(&b->data_lock);
		memcpy(b->data + from, (const uint8_t *)buf + (boff + from - off),
		       (size_t)(to - from));
		pthread_rwlock_unlock(&b->data_lock);
		pthread_mutex_lock(&c->lock);
		b->dirty = true;
		b->dirty_gen++;
		done += (size_t)(to - from);
		if (b->state == BLOCK_FILLING) {
			b->state = BLOCK_READY;
			fill_wake(b);
		}
		block_unref(c, b);
		/* Blocks of a long write would otherwise pile up over capacity. */
		if (c->count > c->capacity)
			r = make_room(c, 0, err);
	}
	pthread_mutex_unlock(&c->lock);
	if (done > 0)
		return (ssize_t)done; /* the part written stays written (and dirty) */
	return r;
}

static int block_index_cmp(const void *a, const void *b)
{
	uint64_t x = (*(struct block *const *)a)->index, y = (*(struct block *const *)b)->index;

	return x < y ? -1 : x > y;
}

int block_cache_flush(struct block_cache *c, struct skr_error *err)
{
	_cleanup_free_ struct block **dirty = NULL;
	size_t n = 0;
	int r = 0;

	if (!c->writable)
		return 0;
	pthread_mutex_lock(&c->lock);
	if (c->count > 0)
		dirty = malloc(c->count * sizeof(*dirty));
	if (c->count > 0 && !dirty) {
		pthread_mutex_unlock(&c->lock);
		return skr_error_set(err, -ENOMEM, "block cache: out of memory");
	}
	/*
	 * Everything dirty now is persisted when we return, also blocks a write-back holds. The
	 * work threads write them back in parallel (one Put Page round trip each otherwise).
	 */
	for (struct block *b = c->lru_head; b; b = b->lru_next)
		if (b->dirty) {
			b->refs++;
			dirty[n++] = b;
		}
	/* In blob order: a back end (or a disk under a file) likes ascending writes. */
	qsort(dirty, n, sizeof(*dirty), block_index_cmp);
	for (size_t i = 0; i < n; i++) {
		struct block *b = dirty[i];

		if (!b->writing_back && !b->queued_writeback) {
			b->queued_writeback = true;
			b->writeback_code = 0;
			b->refs++; /* the queue's */
			queue_push(c, b, true);
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct block *b = dirty[i];

		while (b->queued_writeback || b->writing_back)
			pthread_cond_wait(&c->changed, &c->lock);
		if (b->writeback_code < 0 && r == 0)
			r = skr_error_set(err, b->writeback_code, "%s",
			                  skr_error_message(&b->fail));
		b->writeback_code = 0;
		/* Written again since (or its write-back was not ours to wait for): once more. */
		if (b->dirty && r == 0)
			r = block_write_back(c, b, err);
		block_unref(c, b);
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

/* ---- life cycle ---------------------------------------------------------------------------- */

uint64_t block_cache_size(const struct block_cache *c)
{
	return c->size;
}

void block_cache_get_stats(struct block_cache *c, struct block_cache_stats *out)
{
	pthread_mutex_lock(&c->lock);
	*out = c->stats;
	pthread_mutex_unlock(&c->lock);
}

int block_cache_new(struct blob *b, const struct block_cache_options *o, struct block_cache **out,
                    struct skr_error *err)
{
	struct block_cache_options def = {0};
	uint64_t size = blob_get_properties(b)->size;
	size_t block_size, capacity;
	unsigned nthreads;
	struct block_cache *c;
	size_t buckets = 16;
	int r;

	*out = NULL;
	if (!o)
		o = &def;
	block_size = o->block_size ? o->block_size : BLOCK_SIZE_DEFAULT;
	capacity = o->capacity_blocks ? o->capacity_blocks : CAPACITY_DEFAULT;
	nthreads = o->fetch_threads ? o->fetch_threads : FETCH_THREADS_DEFAULT;
	if (block_size < BLOCK_SIZE_MIN || block_size > BLOCK_SIZE_MAX ||
	    (block_size & (block_size - 1)))
		return skr_error_set(err, -EINVAL,
		                     "block cache: block_size %zu is not a power of two between %u "
		                     "and %u bytes",
		                     block_size, BLOCK_SIZE_MIN, BLOCK_SIZE_MAX);
	if (nthreads > FETCH_THREADS_MAX)
		return skr_error_set(err, -EINVAL, "block cache: fetch_threads %u is more than %u",
		                     nthreads, FETCH_THREADS_MAX);
	if (capacity > SIZE_MAX / block_size)
		return skr_error_set(err, -EINVAL, "block cache: capacity_blocks %zu is too large",
		                     capacity);
	if (b->o.writable && size % BLOB_PAGE_SIZE != 0)
		return skr_error_set(err, -EINVAL,
		                     "block cache: %s is writable but its size %" PRIu64
		                     " is not a multiple of %u (page blobs always are)",
		                     blob_display_url(b), size, BLOB_PAGE_SIZE);

	c = calloc(1, sizeof(*c));
	if (!c)
		return skr_error_set(err, -ENOMEM, "block cache: out of memory");
	c->blob = b;
	c->size = size;
	c->writable = b->o.writable;
	c->block_size = block_size;
	c->capacity = capacity;
	c->readahead = o->readahead_blocks ? o->readahead_blocks : READAHEAD_DEFAULT;
	c->nthreads = nthreads;
	/* Read-ahead may take at most half the cache, or it would evict what is being read. */
	if (c->readahead > c->capacity / 2)
		c->readahead = (unsigned)(c->capacity / 2);
	/* Runs of half the window: the next one is requested while the last is consumed. */
	c->run_blocks = FETCH_RUN_MAX_BYTES / c->block_size;
	if (c->run_blocks > c->readahead / 2)
		c->run_blocks = c->readahead / 2;
	if (c->run_blocks == 0)
		c->run_blocks = 1;
	c->nblocks = (c->size + c->block_size - 1) / c->block_size;
	while (buckets < 2 * c->capacity && buckets < (SIZE_MAX >> 2))
		buckets <<= 1;
	c->nbuckets = buckets;
	c->buckets = calloc(buckets, sizeof(*c->buckets));
	if (!c->buckets) {
		free(c);
		return skr_error_set(err, -ENOMEM, "block cache: out of memory");
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->changed, NULL);
	pthread_cond_init(&c->work, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&c->st.cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	/* Read-ahead streams where the back end can (see "the sequential stream"). */
	if (!c->writable && b->be->stream && c->readahead > 0 && c->nblocks > 1) {
		c->st.discard = malloc(c->block_size);
		if (!c->st.discard) {
			block_cache_free(c);
			return skr_error_set(err, -ENOMEM, "block cache: out of memory");
		}
		r = pthread_create(&c->st.thread, NULL, stream_thread, c);
		if (r != 0) {
			block_cache_free(c);
			return skr_error_set(err, -r, "block cache: starting fetch thread: %s",
			                     skr_strerror(r));
		}
		c->st.started = true;
		c->st.enabled = true;
	}
	for (unsigned i = 0; i < c->nthreads; i++) {
		r = pthread_create(&c->threads[i], NULL, work_thread, c);
		if (r != 0) {
			block_cache_free(c);
			return skr_error_set(err, -r, "block cache: starting fetch thread: %s",
			                     skr_strerror(r));
		}
		c->started++;
	}
	log_debug("block cache over %s: %" PRIu64 " bytes, %zu-byte blocks, %zu blocks, "
	          "read-ahead %u%s, %u fetch threads%s",
	          blob_display_url(b), c->size, c->block_size, c->capacity, c->readahead,
	          c->st.enabled ? " streamed" : "", c->nthreads, c->writable ? ", writable" : "");
	*out = c;
	return 0;
}

void block_cache_free(struct block_cache *c)
{
	size_t dropped = 0;

	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	__atomic_store_n(&c->stop, true, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&c->work);
	pthread_cond_broadcast(&c->st.cond);
	pthread_mutex_unlock(&c->lock);
	/* The stream first: blocks it drops may go to the work queue, emptied below. */
	if (c->st.started)
		pthread_join(c->st.thread, NULL);
	for (unsigned i = 0; i < c->started; i++)
		pthread_join(c->threads[i], NULL);

	/* Work still queued never started (read-ahead; nothing else outlives its caller). */
	while (c->queue_head) {
		struct block *b = c->queue_head;

		c->queue_head = b->queue_next;
		if (b->queued_writeback) {
			block_unref(c, b);
			continue;
		}
		while (b) { /* a run */
			struct block *next = b->run_next;

			b->run_next = NULL;
			fill_done(c, b, -ECANCELED, &(struct skr_error){0});
			b = next;
		}
	}
	while (c->lru_head) {
		struct block *b = c->lru_head;

		if (b->dirty)
			dropped++;
		table_remove(c, b);
		block_destroy(b);
	}
	while (c->spare) {
		struct block *b = c->spare;

		c->spare = b->hash_next;
		block_destroy(b);
	}
	if (dropped)
		log_warn("block cache: %zu modified blocks of %s dropped without write-back "
		         "(block_cache_flush() was not called)",
		         dropped, blob_display_url(c->blob));
	free(c->st.discard);
	pthread_cond_destroy(&c->st.cond);
	pthread_cond_destroy(&c->work);
	pthread_cond_destroy(&c->changed);
	pthread_mutex_destroy(&c->lock);
	free(c->buckets);
	free(c);
}
