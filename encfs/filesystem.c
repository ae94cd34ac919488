/* SPDX-License-Identifier: MIT */
/*
 * One EncfsSideCarArgs filesystem from blob to published mount point (encfs.h, "One filesystem:
 * the whole pipeline"):
 *
 *   blob_open → FUSE file over a block cache at <work_dir>/<index>/ (or a download to
 *   <work_dir>/<index>/image) → key_fn → [verity_open <prefix><index>-verity] →
 *   luks_header_check_file → luks_open <prefix><index>-crypt → encfs_mount_ext4 at
 *   <dirname(mount_point)>/.filesystem-<index> → encfs_publish at mount_point
 *
 * Each stage sets a field of struct encfs_fs as soon as it holds something, and one teardown
 * walks the fields backwards: a failure at any stage and encfs_fs_unmount() undo exactly what
 * exists, in reverse order. The passphrase lives only between key_fn and luks_open.
 *
 * The mount and the symlink are held by descriptors from the moment they exist (struct
 * encfs_mount_hold): the app owns the mount point's directory and may rename it or swap a
 * component of its path for a symlink while mounted; teardown never looks the paths up again.
 */
#include "encfs.h"
#include "mount_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bytes.h"
#include "cleanup.h"
#include "deadline.h"
#include "fileio.h"
#include "log.h"
#include "secret.h"

/* encfs_fs_unmount() with a timeout of 0. */
#define FS_UNMOUNT_TIMEOUT_DEFAULT_MS 30000
/* Range requests in flight for a download, as many as the block cache's default fetchers. */
#define FS_DOWNLOAD_PARALLEL_DEFAULT 4
/* A mapping still held by a lazily unmounted filesystem is retried this often until the
 * deadline: the kernel lets go of it once the last reader closes its files. */
#define FS_BUSY_RETRY_MS 100

struct encfs_fs {
	unsigned index;
	bool read_write;
	char *mount_point;
	char *target;   /* <dirname(mount_point)>/.filesystem-<index> */
	char *dir;      /* <work_dir>/<index> */
	char *image;    /* the local file: the FUSE "data" file or the download */
	char *crypt;    /* <prefix><index>-crypt */
	char *verity;   /* <prefix><index>-verity */
	char *dm_crypt; /* /dev/mapper/…-crypt */
	char *dm_verity;
	struct blob *blob;
	struct block_cache *cache;
	struct blob_fuse *fuse;
	struct encfs_mount_hold mnt; /* the mount at target and the symlink at mount_point */
	/* what exists now, in the order it was made */
	bool dir_made, downloaded, verity_open, crypt_open, mounted, published;
	/* the teardown's current stage, read by encfs_fs_unmount() for a timeout's message */
	const char *_Atomic stage;
};

const char *encfs_step_name(enum encfs_step s)
{
	switch (s) {
	case ENCFS_STEP_BLOB:
		return "blob";
	case ENCFS_STEP_ATTEST:
		return "attest";
	case ENCFS_STEP_RELEASE:
		return "release";
	case ENCFS_STEP_POLICY:
		return "policy denied";
	case ENCFS_STEP_KEY:
		return "wrong key";
	case ENCFS_STEP_HEADER:
		return "not LUKS";
	case ENCFS_STEP_VERITY:
		return "verity";
	case ENCFS_STEP_MOUNT:
		return "mount";
	}
	return "unknown";
}

static double ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

static long long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* "<dirname(mount_point)>/.filesystem-<index>": a sibling, so that the symlink is relative. */
static char *hidden_target(const char *mount_point, unsigned index)
{
	const char *slash = strrchr(mount_point, '/');
	char *out;

	if (!slash)
		return NULL;
	if (asprintf(&out, "%.*s/.filesystem-%u", (int)(slash - mount_point), mount_point, index) <
	    0)
		return NULL;
	return out;
}

static void fs_free(struct encfs_fs *fs)
{
	if (!fs)
		return;
	encfs_mount_hold_clear(&fs->mnt);
	free(fs->mount_point);
	free(fs->target);
	free(fs->dir);
	free(fs->image);
	free(fs->crypt);
	free(fs->verity);
	free(fs->dm_crypt);
	free(fs->dm_verity);
	free(fs);
}

/* Keep the first failure: the teardown goes on after one, and the first says the most. */
static int keep_first(int r, int first, struct skr_error *err, const struct skr_error *e)
{
	if (r >= 0 || first < 0)
		return first;
	if (err && !err->code)
		*err = *e;
	return r;
}

/*
 * Close a mapping, retrying while it is busy until @deadline: after a lazy unmount the
 * filesystem lets go of its device only when the last open file is closed.
 */
static int close_mapping(int (*close_fn)(const char *, struct skr_error *), const char *name,
                         long long deadline, struct skr_error *e)
{
	int r;

	for (;;) {
		skr_error_clear(e);
		r = close_fn(name, e);
		if (r != -EBUSY || now_ms() >= deadline)
			return r;
		sleep_ms(FS_BUSY_RETRY_MS);
	}
}

/*
 * Undo everything @fs holds, newest first; every stage is attempted even after a failure (what
 * is left behind would otherwise outlive the process). Returns 0 or the first failure.
 */
static int fs_teardown(struct encfs_fs *fs, long long deadline, struct skr_error *err)
{
	struct skr_error e = {0};
	int first = 0, r;

	if (fs->published || fs->mounted) {
		/* Removes our symlink (only ours), unmounts and removes the target, through the
		 * descriptors held since they were made. */
		fs->stage = "unmount";
		skr_error_clear(&e);
		r = encfs_unpublish_held(&fs->mnt, 0, &e);
		if (r < 0)
			skr_error_prefix(&e, "unmount %s: ", fs->target);
		first = keep_first(r, first, err, &e);
		fs->published = fs->mounted = false;
	}
	if (fs->crypt_open) {
		fs->stage = "close LUKS";
		r = close_mapping(luks_close, fs->crypt, deadline, &e);
		if (r < 0)
			skr_error_prefix(&e, "close %s: ", fs->crypt);
		first = keep_first(r, first, err, &e);
		fs->crypt_open = false;
	}
	if (fs->verity_open) {
		fs->stage = "close verity";
		r = close_mapping(verity_close, fs->verity, deadline, &e);
		if (r < 0)
			skr_error_prefix(&e, "close %s: ", fs->verity);
		first = keep_first(r, first, err, &e);
		fs->verity_open = false;
	}
	if (fs->fuse) {
		/* Flushes the cache's dirty blocks to the blob (read-write) before unmounting. */
		fs->stage = "unmount FUSE";
		skr_error_clear(&e);
		r = blob_fuse_unmount(fs->fuse, &e);
		if (r < 0)
			skr_error_prefix(&e, "FUSE %s: ", fs->dir);
		first = keep_first(r, first, err, &e);
		fs->fuse = NULL;
	}
	if (fs->cache) {
		if (fs->read_write) {
			fs->stage = "flush";
			skr_error_clear(&e);
			r = block_cache_flush(fs->cache, &e);
			if (r < 0)
				skr_error_prefix(&e, "write back to the blob: ");
			first = keep_first(r, first, err, &e);
		}
		block_cache_free(fs->cache);
		fs->cache = NULL;
	}
	blob_close(fs->blob);
	fs->blob = NULL;
	if (fs->downloaded) {
		fs->stage = "remove download";
		if (unlink(fs->image) < 0 && errno != ENOENT) {
			r = -errno;
			skr_error_reset(&e, r, "remove %s: %s", fs->image, skr_strerror(r));
			first = keep_first(r, first, err, &e);
		}
		fs->downloaded = false;
	}
	if (fs->dir_made) {
		fs->stage = "remove work directory";
		if (rmdir(fs->dir) < 0 && errno != ENOENT) {
			r = -errno;
			skr_error_reset(&e, r, "remove %s: %s", fs->dir, skr_strerror(r));
			first = keep_first(r, first, err, &e);
		}
		fs->dir_made = false;
	}
	fs->stage = "done";
	return first;
}

/* Step "blob": open the blob (HEAD, or stat for file://). */
static int fs_open_blob(struct encfs_fs *fs, const struct encfs_fs_config *cfg,
                        struct skr_error *err)
{
	struct blob_options bo = cfg->blob;

	if (cfg->read_write && cfg->access == ENCFS_ACCESS_DOWNLOAD)
		return skr_error_set(
		        err, -EINVAL,
		        "read_write needs access \"fuse\": writes to a downloaded copy "
		        "would never reach the blob");
	bo.writable = cfg->read_write;
	return blob_open(&bo, &fs->blob, err);
}

/* Step "blob": make the opened blob a local file (FUSE or download). */
static int fs_expose(struct encfs_fs *fs, const struct encfs_fs_config *cfg, struct skr_error *err)
{
	int r;

	r = mkdir_p(cfg->work_dir, 0700);
	if (r < 0)
		return skr_error_set(err, r, "create %s: %s", cfg->work_dir, skr_strerror(r));
	if (cfg->access == ENCFS_ACCESS_DOWNLOAD) {
		if (mkdir(fs->dir, 0700) < 0)
			return skr_error_set(err, -errno, "create %s: %s", fs->dir,
			                     skr_strerror(errno));
		fs->dir_made = true;
		fs->image = path_join(fs->dir, "image");
		if (!fs->image)
			return skr_error_set(err, -ENOMEM, "out of memory");
		/* blob_download removes a partial file itself. */
		r = blob_download(fs->blob, fs->image,
		                  cfg->cache.fetch_threads ? cfg->cache.fetch_threads
		                                           : FS_DOWNLOAD_PARALLEL_DEFAULT,
		                  err);
		if (r < 0)
			return r;
		fs->downloaded = true;
		blob_close(TAKE_PTR(fs->blob));
		return 0;
	}

	r = block_cache_new(fs->blob, &cfg->cache, &fs->cache, err);
	if (r < 0)
		return r;
	/* blob_fuse_mount creates the directory; a stale one from a crash must be empty. */
	if (access(fs->dir, F_OK) < 0)
		fs->dir_made = true;
	r = blob_fuse_mount(fs->cache, fs->dir, cfg->read_write, &fs->fuse, err);
	if (r < 0)
		return r;
	fs->dir_made = true;
	fs->image = strdup(blob_fuse_file(fs->fuse));
	if (!fs->image)
		return skr_error_set(err, -ENOMEM, "out of memory");
	return 0;
}

/* Between steps: a shutdown stops the pipeline here; the caller undoes what was done. */
static int fs_check_cancel(const struct encfs_fs_config *cfg, enum encfs_step next,
                           struct skr_error *err)
{
	if (!cfg->cancel || !atomic_load(cfg->cancel))
		return 0;
	return skr_error_set(err, -ECANCELED,
	                     "stopped before step %s: the sidecar is shutting down",
	                     encfs_step_name(next));
}

static int fs_run(struct encfs_fs *fs, const struct encfs_fs_config *cfg, enum encfs_step *step,
                  struct skr_error *err)
{
	_cleanup_secret_ struct secret *passphrase = NULL;
	const char *device;
	struct timespec t0, t;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	t = t0;
	*step = ENCFS_STEP_BLOB;
	r = fs_open_blob(fs, cfg, err);
	if (r < 0)
		return skr_error_prefix(err, "blob: ");
	if (cfg->verity_root_hash) {
		/* Before anything is fetched: a blob of another size is not our verity layout. */
		uint64_t size = blob_get_properties(fs->blob)->size, data_size;

		*step = ENCFS_STEP_VERITY;
		r = verity_layout_from_total(size, &data_size, err);
		if (r < 0)
			return skr_error_prefix(err, "%s (%llu bytes) with verity_root_hash: ",
			                        blob_display_url(fs->blob),
			                        (unsigned long long)size);
		*step = ENCFS_STEP_BLOB;
	}
	r = fs_check_cancel(cfg, ENCFS_STEP_BLOB, err);
	if (r < 0)
		return r;
	r = fs_expose(fs, cfg, err);
	if (r < 0)
		return skr_error_prefix(err, "blob: ");
	log_info("filesystem %u (%s): image %s in %.0f ms", fs->index, fs->mount_point,
	         fs->fuse ? "exposed through FUSE" : "downloaded", ms_since(&t));

	clock_gettime(CLOCK_MONOTONIC, &t);
	*step = ENCFS_STEP_RELEASE;
	r = fs_check_cancel(cfg, ENCFS_STEP_RELEASE, err);
	if (r < 0)
		return r;
	r = cfg->key_fn(cfg->key_userdata, &passphrase, step, err);
	if (r >= 0 && (!passphrase || passphrase->len == 0))
		r = skr_error_set(err, -EPROTO, "the key function returned no passphrase");
	if (r < 0) {
		if (*step != ENCFS_STEP_ATTEST && *step != ENCFS_STEP_POLICY)
			*step = ENCFS_STEP_RELEASE;
		return r;
	}
	log_info("filesystem %u (%s): key obtained in %.0f ms", fs->index, fs->mount_point,
	         ms_since(&t));

	device = fs->image;
	r = fs_check_cancel(cfg, cfg->verity_root_hash ? ENCFS_STEP_VERITY : ENCFS_STEP_HEADER,
	                    err);
	if (r < 0)
		return r;
	if (cfg->verity_root_hash) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		*step = ENCFS_STEP_VERITY;
		r = verity_open(fs->image, fs->verity, cfg->verity_root_hash, &fs->dm_verity, err);
		if (r < 0)
			return skr_error_prefix(err, "verity: ");
		fs->verity_open = true;
		device = fs->dm_verity;
		log_info("filesystem %u (%s): verity %s opened in %.0f ms", fs->index,
		         fs->mount_point, fs->dm_verity, ms_since(&t));
	}

	/* The header comes from untrusted storage: the allowlist runs before any activation. */
	*step = ENCFS_STEP_HEADER;
	r = luks_header_check_file(device, err);
	if (r < 0)
		return skr_error_prefix(err, "LUKS header: ");

	clock_gettime(CLOCK_MONOTONIC, &t);
	*step = ENCFS_STEP_KEY;
	r = luks_open(device, fs->crypt, passphrase, !cfg->read_write, &fs->dm_crypt, err);
	/* Its one use is over: erased now rather than at the end of the pipeline. */
	secret_free(TAKE_PTR(passphrase));
	if (r == -EPERM) {
		/* The operator compares this fingerprint with importkey's output. */
		log_warn("filesystem %u (%s): %s; compare the fingerprint with the one importkey "
		         "printed for this key",
		         fs->index, fs->mount_point, skr_error_message(err));
		return r;
	}
	if (r < 0) {
		/* luks_open() checks the header again, and libcryptsetup's view of it: a refusal
		 * there (the image changed after the check above) is still the header's fault. */
		*step = r == -EBADMSG || r == -EMEDIUMTYPE ? ENCFS_STEP_HEADER : ENCFS_STEP_MOUNT;
		return skr_error_prefix(err, "LUKS open: ");
	}
	fs->crypt_open = true;
	log_info("filesystem %u (%s): LUKS %s opened %s in %.0f ms", fs->index, fs->mount_point,
	         fs->dm_crypt, cfg->read_write ? "read-write" : "read-only", ms_since(&t));

	clock_gettime(CLOCK_MONOTONIC, &t);
	*step = ENCFS_STEP_MOUNT;
	r = fs_check_cancel(cfg, ENCFS_STEP_MOUNT, err);
	if (r < 0)
		return r;
	r = encfs_mount_ext4_held(fs->dm_crypt, fs->target, cfg->read_write, &fs->mnt, err);
	if (r < 0)
		return skr_error_prefix(err, "mount: ");
	fs->mounted = true;
	r = encfs_publish_held(&fs->mnt, fs->mount_point, err);
	if (r < 0)
		return skr_error_prefix(err, "publish: ");
	fs->published = true;
	log_info("filesystem %u (%s): mounted %s in %.0f ms (%.0f ms in all)", fs->index,
	         fs->mount_point, cfg->read_write ? "read-write" : "read-only", ms_since(&t),
	         ms_since(&t0));
	return 0;
}

static int config_check(const struct encfs_fs_config *cfg, struct skr_error *err)
{
	if (!cfg->mount_point || cfg->mount_point[0] != '/' || !cfg->mount_point[1])
		return skr_error_set(err, -EINVAL,
		                     "filesystem %u: mount_point must be an absolute path below /",
		                     cfg->index);
	if (!cfg->work_dir || cfg->work_dir[0] != '/')
		return skr_error_set(err, -EINVAL, "filesystem %u: work_dir must be absolute",
		                     cfg->index);
	if (!cfg->dm_prefix || !*cfg->dm_prefix || strchr(cfg->dm_prefix, '/'))
		return skr_error_set(
		        err, -EINVAL,
		        "filesystem %u: dm_prefix must be a non-empty name without '/'",
		        cfg->index);
	if (!cfg->key_fn)
		return skr_error_set(err, -EINVAL, "filesystem %u: no key function", cfg->index);
	if (cfg->verity_root_hash && cfg->read_write)
		return skr_error_set(err, -EINVAL,
		                     "filesystem %u: verity_root_hash pins a read-only image; "
		                     "read_write must be false",
		                     cfg->index);
	if (cfg->access != ENCFS_ACCESS_FUSE && cfg->access != ENCFS_ACCESS_DOWNLOAD)
		return skr_error_set(err, -EINVAL, "filesystem %u: unknown access mode",
		                     cfg->index);
	return 0;
}

int encfs_fs_mount(const struct encfs_fs_config *cfg, struct encfs_fs **out,
                   enum encfs_step *failed_step, struct skr_error *err)
{
	struct encfs_fs *fs;
	enum encfs_step step = ENCFS_STEP_BLOB;
	struct skr_error e = {0};
	char index[16];
	int r;

	*out = NULL;
	if (failed_step)
		*failed_step = ENCFS_STEP_BLOB;
	r = config_check(cfg, err);
	if (r < 0)
		return r;
	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return skr_error_set(err, -ENOMEM, "out of memory");
	fs->mnt = (struct encfs_mount_hold)ENCFS_MOUNT_HOLD_INIT;
	fs->index = cfg->index;
	fs->read_write = cfg->read_write;
	snprintf(index, sizeof(index), "%u", cfg->index);
	fs->mount_point = strdup(cfg->mount_point);
	fs->target = hidden_target(cfg->mount_point, cfg->index);
	fs->dir = path_join(cfg->work_dir, index);
	if (asprintf(&fs->crypt, "%s%u-crypt", cfg->dm_prefix, cfg->index) < 0)
		fs->crypt = NULL;
	if (asprintf(&fs->verity, "%s%u-verity", cfg->dm_prefix, cfg->index) < 0)
		fs->verity = NULL;
	if (!fs->mount_point || !fs->target || !fs->dir || !fs->crypt || !fs->verity) {
		fs_free(fs);
		return skr_error_set(err, -ENOMEM, "out of memory");
	}

	r = fs_run(fs, cfg, &step, err);
	if (r < 0) {
		if (failed_step)
			*failed_step = step;
		/* The undo's own failure is logged; the reason reported is the pipeline's. */
		if (fs_teardown(fs, now_ms() + FS_UNMOUNT_TIMEOUT_DEFAULT_MS, &e) < 0)
			log_error(
			        "filesystem %u (%s): undoing the failed mount: %s; the next start "
			        "cleans up what is left",
			        fs->index, fs->mount_point, skr_error_message(&e));
		fs_free(fs);
		return r;
	}
	*out = fs;
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Unmount within a time bound: the teardown runs on its own thread, so that a hung unmount
 * (a FUSE request that never returns, a busy device) cannot hold the caller past the bound.
 * ------------------------------------------------------------------------------------------- */

struct unmount_job {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct encfs_fs *fs;
	long long deadline;
	bool done, abandoned;
	int r;
	struct skr_error err;
};

static void unmount_job_free(struct unmount_job *job)
{
	pthread_cond_destroy(&job->cond);
	pthread_mutex_destroy(&job->lock);
	free(job);
}

static void *unmount_thread(void *arg)
{
	struct unmount_job *job = arg;
	struct skr_error e = {0};
	bool abandoned;
	int r;

	r = fs_teardown(job->fs, job->deadline, &e);
	pthread_mutex_lock(&job->lock);
	if (job->abandoned && r < 0)
		log_error("filesystem %u (%s): unmount finished late: %s", job->fs->index,
		          job->fs->mount_point, e.msg);
	else if (job->abandoned)
		log_info("filesystem %u (%s): unmount finished late", job->fs->index,
		         job->fs->mount_point);
	fs_free(job->fs);
	job->fs = NULL;
	job->r = r;
	job->err = e;
	job->done = true;
	abandoned = job->abandoned;
	pthread_cond_signal(&job->cond);
	pthread_mutex_unlock(&job->lock);
	if (abandoned)
		unmount_job_free(job);
	return NULL;
}

int encfs_fs_unmount(struct encfs_fs *fs, unsigned timeout_ms, struct skr_error *err)
{
	struct unmount_job *job;
	pthread_condattr_t ca;
	pthread_t thread;
	struct timespec until;
	char mount_point[512];
	const char *stage;
	unsigned index;
	int r;

	if (!fs)
		return 0;
	if (timeout_ms == 0)
		timeout_ms = FS_UNMOUNT_TIMEOUT_DEFAULT_MS;
	job = calloc(1, sizeof(*job));
	if (!job) {
		/* No thread to bound it: tear down here rather than leave everything mounted. */
		r = fs_teardown(fs, now_ms() + timeout_ms, err);
		fs_free(fs);
		return r;
	}
	pthread_mutex_init(&job->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&job->cond, &ca);
	pthread_condattr_destroy(&ca);
	job->fs = fs;
	job->deadline = now_ms() + timeout_ms;
	index = fs->index;
	snprintf(mount_point, sizeof(mount_point), "%s", fs->mount_point);

	/*
	 * Joinable, and joined when it finishes in time: a thread still exiting runs OpenSSL's and
	 * libcryptsetup's thread-local destructors, which must not race the process's exit (it
	 * frees their global state; under ASan the race showed as a leak of libcrypto's tables).
	 * Only a teardown that overruns its bound is detached and left to finish on its own.
	 */
	r = pthread_create(&thread, NULL, unmount_thread, job);
	if (r != 0) {
		unmount_job_free(job);
		r = fs_teardown(fs, now_ms() + timeout_ms, err);
		fs_free(fs);
		return r;
	}

	until = deadline_after_ms(CLOCK_MONOTONIC, timeout_ms);
	pthread_mutex_lock(&job->lock);
	while (!job->done)
		if (pthread_cond_timedwait(&job->cond, &job->lock, &until) == ETIMEDOUT)
			break;
	if (!job->done) {
		stage = job->fs->stage ? job->fs->stage : "start";
		job->abandoned = true;
		pthread_mutex_unlock(&job->lock);
		pthread_detach(thread);
		return skr_error_set(err, -ETIMEDOUT,
		                     "filesystem %u (%s): unmount still running after %u ms (at "
		                     "\"%s\"); it goes on in the background",
		                     index, mount_point, timeout_ms, stage);
	}
	pthread_mutex_unlock(&job->lock);
	pthread_join(thread, NULL);
	r = job->r;
	if (r < 0 && err && !err->code)
		*err = job->err;
	unmount_job_free(job);
	if (r == 0)
		log_info("filesystem %u (%s): unmounted", index, mount_point);
	return r;
}
