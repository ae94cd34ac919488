/* SPDX-License-Identifier: MIT */
/*
 * The daemon's filesystems: configuration → libencfs pipeline, key from secure key release,
 * status, ready file, teardown (encfs_runner.h).
 */
#include "encfs_runner.h"

#include <errno.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "audit.h"
#include "b64.h"
#include "cleanup.h"
#include "encfs.h"
#include "fileio.h"
#include "log.h"
#include "secret.h"
#include "skr.h"
#include "status.h"

struct runner_fs {
	struct sidecar_encfs_runner *runner;
	size_t index;
	const struct sidecar_filesystem *conf;
	pthread_t thread;
	bool started;
	/* set by the pipeline thread under the runner's lock */
	bool done;
	bool failed;
	struct encfs_fs *fs;
};

struct sidecar_encfs_runner {
	const struct sidecar_config *cfg;
	struct skr_attester *attester;
	struct sidecar_status *status;
	struct sidecar_audit *audit;
	struct skr_identity *identity; /* storage tokens for azure_url_private; NULL if none */
	char *dm_prefix;
	const char *work_dir;
	void (*done_fn)(void *userdata);
	void *done_userdata;

	atomic_bool stopping; /* cancels pipelines still running (encfs_fs_config.cancel) */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a pipeline finished */
	size_t n, n_done, n_failed;
	struct runner_fs fs[SIDECAR_FILESYSTEMS_MAX];
};

static long long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void deadline_to_timespec(long long deadline_ms, struct timespec *ts)
{
	ts->tv_sec = (time_t)(deadline_ms / 1000);
	ts->tv_nsec = (long)(deadline_ms % 1000) * 1000000L;
}

/* ---------------------------------------------------------------------------------------------
 * Reasons without secrets
 * ------------------------------------------------------------------------------------------- */

/*
 * Replace the @old_len bytes at @s + @at (inside the NUL-terminated @s of @size bytes) with
 * @repl; what no longer fits is cut off at the end. Returns the offset just past @repl.
 */
static size_t replace_span(char *s, size_t size, size_t at, size_t old_len, const char *repl)
{
	size_t rl = strlen(repl), tail = strlen(s + at + old_len);

	if (at + rl > size - 1)
		rl = size - 1 - at;
	if (at + rl + tail > size - 1)
		tail = size - 1 - at - rl;
	memmove(s + at + rl, s + at + old_len, tail);
	memcpy(s + at, repl, rl);
	s[at + rl + tail] = '\0';
	return at + rl;
}

/* Replace every occurrence of @needle (a secret, ≥ 8 characters) in @s with "<redacted>". */
static void scrub_literal(char *s, size_t size, const char *needle)
{
	size_t nl = needle ? strlen(needle) : 0, at = 0;
	char *p;

	if (nl < 8)
		return;
	/* Searching on after the replacement: a needle inside "<redacted>" cannot loop. */
	while (at < strlen(s) && (p = strstr(s + at, needle)))
		at = replace_span(s, size, (size_t)(p - s), nl, "<redacted>");
}

/*
 * The reason as /status and the log show it: a SAS signature ("sig=…") or the configured
 * bearer token never leaves the process, whatever a lower layer put into the message.
 */
void sidecar_encfs_reason_scrub(char *s, size_t size, const struct sidecar_filesystem *conf)
{
	static const char repl[] = "REDACTED";
	size_t at = 0;
	char *p;

	if (!s || size == 0)
		return;
	scrub_literal(s, size, conf->akv_bearer_token);
	scrub_literal(s, size, conf->raw_key_hex);
	while (at < strlen(s) && (p = strcasestr(s + at, "sig="))) {
		char *v = p + 4, *end = v;

		while (*end && !strchr("& \t\"'<>", *end))
			end++;
		if ((size_t)(end - v) == sizeof(repl) - 1 &&
		    memcmp(v, repl, sizeof(repl) - 1) == 0) {
			at = (size_t)(end - s);
			continue;
		}
		at = replace_span(s, size, (size_t)(v - s), (size_t)(end - v), repl);
	}
}

/* ---------------------------------------------------------------------------------------------
 * The key: secure key release (or raw_key in test builds) → 32-byte LUKS passphrase
 * ------------------------------------------------------------------------------------------- */

/*
 * Which step a failed release stopped at. skr_release_key() names its steps at the start of
 * the message ("attest: ", "release: ", ...), and a policy refusal is the vault's 403, the one
 * -EACCES whose message says "release denied" (a 401 is a refused bearer token, not a policy).
 */
static enum encfs_step release_step(int r, const struct skr_error *e)
{
	if (strncmp(e->msg, "attest: ", 8) == 0)
		return ENCFS_STEP_ATTEST;
	if (r == -EACCES && strstr(e->msg, "release denied"))
		return ENCFS_STEP_POLICY;
	return ENCFS_STEP_RELEASE;
}

static void audit_release(struct runner_fs *f, int r, enum encfs_step step,
                          const struct skr_release_info *info, const char *reason)
{
	char endpoint[64];
	struct sidecar_audit_event ev = {
	        .endpoint = endpoint,
	        .outcome = r == 0                      ? "success"
	                   : step == ENCFS_STEP_POLICY ? "denied"
	                                               : "error",
	        .status = r == 0 ? 200 : sidecar_api_status_for_error(r),
	        .maa_endpoint = f->conf->maa_endpoint,
	        .akv_endpoint = f->conf->akv_endpoint,
	        .kid = f->conf->kid,
	        .key_id = info->kid[0] ? info->kid : NULL,
	        .key_fingerprint = info->key_fingerprint[0] ? info->key_fingerprint : NULL,
	        .token_jti = info->jti[0] ? info->jti : NULL,
	        .report_sha256 = info->report_sha256[0] ? info->report_sha256 : NULL,
	        .reason = reason,
	};

	if (!f->runner->audit)
		return;
	snprintf(endpoint, sizeof(endpoint), "azure_filesystems[%zu]", f->index);
	sidecar_audit_record(f->runner->audit, &ev);
}

static int key_from_raw(struct runner_fs *f, struct secret **out, enum encfs_step *step,
                        struct skr_error *err)
{
	_cleanup_secret_ struct secret *s = NULL;
	const char *hex = f->conf->raw_key_hex;

	*step = ENCFS_STEP_RELEASE;
	/* config.c refuses it already; a second look where the key is used costs nothing. */
	if (!sidecar_config_raw_key_allowed())
		return skr_error_set(err, -EPERM,
		                     "raw_key is for testing only: this build does not accept it");
	s = secret_new(SKR_DERIVED_KEY_SIZE);
	if (!s)
		return skr_error_set(err, -ENOMEM, "out of memory");
	if (strlen(hex) != 2 * SKR_DERIVED_KEY_SIZE ||
	    hex_decode(hex, strlen(hex), s->data, SKR_DERIVED_KEY_SIZE) < 0)
		return skr_error_set(err, -EINVAL, "raw_key: expected 64 hex digits");
	*out = TAKE_PTR(s);
	return 0;
}

static int runner_key(void *userdata, struct secret **passphrase, enum encfs_step *step,
                      struct skr_error *err)
{
	struct runner_fs *f = userdata;
	const struct sidecar_filesystem *c = f->conf;
	struct skr_release_request req = {
	        .maa_endpoint = c->maa_endpoint,
	        .akv_endpoint = c->akv_endpoint,
	        .kid = c->kid,
	        .access_token = c->akv_bearer_token,
	};
	struct skr_release_info info = {0};
	struct skr_key *key = NULL;
	char fingerprint[SKR_FINGERPRINT_STR_SIZE];
	int r;

	if (c->raw_key_hex) {
		r = key_from_raw(f, passphrase, step, err);
		if (r == 0) {
			skr_key_fingerprint((*passphrase)->data, (*passphrase)->len, fingerprint);
			log_warn("filesystem %zu (%s): LUKS key from raw_key (testing only), "
			         "fingerprint %s",
			         f->index, c->mount_point, fingerprint);
		}
		return r;
	}

	r = skr_release_key_ex(f->runner->attester, &req, &key, &info, err);
	if (r < 0) {
		*step = release_step(r, err);
		audit_release(f, r, *step, &info, skr_error_message(err));
		return r;
	}
	audit_release(f, 0, ENCFS_STEP_RELEASE, &info, NULL);
	/* oct: exactly 32 bytes, used as they are; RSA: HKDF with key_derivation (§7.6). */
	r = skr_key_derive(key, c->kdf_salt_hex, c->kdf_label, passphrase, err);
	skr_key_free(key);
	if (r < 0) {
		*step = ENCFS_STEP_RELEASE;
		return skr_error_prefix(err, "released key %s (fingerprint %s): ", c->kid,
		                        info.key_fingerprint);
	}
	skr_key_fingerprint((*passphrase)->data, (*passphrase)->len, fingerprint);
	log_info("filesystem %zu (%s): key %s released (fingerprint %s); LUKS key fingerprint %s",
	         f->index, c->mount_point, info.kid[0] ? info.kid : c->kid, info.key_fingerprint,
	         fingerprint);
	return 0;
}

/* azure_url_private: a bearer token for the storage account from the managed identity. */
static int runner_blob_token(void *userdata, const char *resource, struct secret **token,
                             struct skr_error *err)
{
	struct sidecar_encfs_runner *r = userdata;

	return skr_identity_get_token(r->identity, resource, token, err);
}

/* ---------------------------------------------------------------------------------------------
 * Pipelines
 * ------------------------------------------------------------------------------------------- */

static void fs_config(struct runner_fs *f, struct encfs_fs_config *out)
{
	struct sidecar_encfs_runner *r = f->runner;
	const struct sidecar_config *cfg = r->cfg;

	*out = (struct encfs_fs_config){
	        .index = (unsigned)f->index,
	        .mount_point = f->conf->mount_point,
	        .read_write = f->conf->read_write,
	        .verity_root_hash = f->conf->verity_root_hash,
	        .access = cfg->access == SIDECAR_ACCESS_DOWNLOAD ? ENCFS_ACCESS_DOWNLOAD
	                                                         : ENCFS_ACCESS_FUSE,
	        .blob =
	                {
	                        .url = f->conf->azure_url,
	                        .ca_bundle = cfg->ca_bundle,
	                        .token_fn = f->conf->azure_url_private ? runner_blob_token : NULL,
	                        .token_userdata = r,
	                        .timeout_ms = cfg->timeout_ms > 0 ? (unsigned)cfg->timeout_ms : 0,
	                        .writable = f->conf->read_write,
	                },
	        .cache =
	                {
	                        .block_size = cfg->cache_block_size,
	                        .capacity_blocks = cfg->cache_capacity_blocks,
	                        .readahead_blocks = cfg->cache_readahead_blocks,
	                },
	        .work_dir = r->work_dir,
	        .dm_prefix = r->dm_prefix,
	        .key_fn = runner_key,
	        .key_userdata = f,
	        .cancel = &r->stopping,
	};
}

/* Every filesystem mounted: the ready file for exec probes (written once, atomically). */
static void ready_file_write(struct sidecar_encfs_runner *r)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	FILE *m;
	int e;

	if (!r->cfg->ready_file)
		return;
	m = open_memstream(&text, &len);
	if (!m) {
		log_error("ready file %s: out of memory", r->cfg->ready_file);
		return;
	}
	for (size_t i = 0; i < r->n; i++)
		fprintf(m, "%s\n", r->fs[i].conf->mount_point);
	if (fclose(m) != 0) {
		log_error("ready file %s: out of memory", r->cfg->ready_file);
		return;
	}
	e = write_file_atomic(r->cfg->ready_file, text, len, 0644);
	if (e < 0)
		log_error("ready file %s: %s; probes waiting for it will not see the sidecar ready",
		          r->cfg->ready_file, skr_strerror(e));
	else
		log_info("ready file %s written", r->cfg->ready_file);
}

static void *pipeline_thread(void *arg)
{
	struct runner_fs *f = arg;
	struct sidecar_encfs_runner *r = f->runner;
	struct encfs_fs_config fc;
	struct encfs_fs *fs = NULL;
	enum encfs_step step = ENCFS_STEP_BLOB;
	struct skr_error err = {0};
	bool all_done, all_mounted;
	int rc;

	fs_config(f, &fc);
	log_info("filesystem %zu (%s): mounting", f->index, f->conf->mount_point);
	rc = encfs_fs_mount(&fc, &fs, &step, &err);
	if (rc < 0) {
		sidecar_encfs_reason_scrub(err.msg, sizeof(err.msg), f->conf);
		log_error("filesystem %zu (%s): failed at step \"%s\": %s", f->index,
		          f->conf->mount_point, encfs_step_name(step), skr_error_message(&err));
		sidecar_status_set_fs(r->status, f->conf->mount_point, SIDECAR_FS_FAILED,
		                      encfs_step_name(step), skr_error_message(&err));
	} else {
		sidecar_status_set_fs(r->status, f->conf->mount_point, SIDECAR_FS_MOUNTED, NULL,
		                      NULL);
	}

	pthread_mutex_lock(&r->lock);
	f->fs = fs;
	f->failed = rc < 0;
	f->done = true;
	r->n_done++;
	if (rc < 0)
		r->n_failed++;
	all_done = r->n_done == r->n;
	all_mounted = all_done && r->n_failed == 0;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);

	if (all_mounted) {
		log_info("all %zu filesystem(s) mounted", r->n);
		ready_file_write(r);
	} else if (all_done) {
		log_error("%zu of %zu filesystem(s) failed to mount%s", r->n_failed, r->n,
		          r->cfg->on_mount_failure == SIDECAR_ON_FAILURE_EXIT
		                  ? ": the sidecar exits (on_mount_failure \"exit\")"
		                  : "; serving the others (on_mount_failure \"continue\")");
	}
	if (all_done && r->done_fn)
		r->done_fn(r->done_userdata);
	return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Start, wait, stop
 * ------------------------------------------------------------------------------------------- */

static void runner_free(struct sidecar_encfs_runner *r)
{
	if (!r)
		return;
	skr_identity_free(r->identity);
	free(r->dm_prefix);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/* A restart after a crash: unmount, close and remove what a previous run of ours left. */
static void runner_cleanup_stale(struct sidecar_encfs_runner *r)
{
	const char *mount_points[SIDECAR_FILESYSTEMS_MAX];
	struct skr_error err = {0};

	for (size_t i = 0; i < r->n; i++)
		mount_points[i] = r->fs[i].conf->mount_point;
	if (encfs_cleanup_stale(r->work_dir, r->dm_prefix, mount_points, r->n, &err) < 0)
		log_warn("cleaning up after an earlier run: %s; mounting anyway",
		         skr_error_message(&err));
	if (r->cfg->ready_file && unlink(r->cfg->ready_file) == 0)
		log_info("removed the stale ready file %s", r->cfg->ready_file);
}

int sidecar_encfs_runner_start(const struct sidecar_encfs_runner_options *o,
                               struct sidecar_encfs_runner **out, struct skr_error *err)
{
	struct sidecar_encfs_runner *r;
	pthread_condattr_t ca;
	bool private = false;
	int e;

	*out = NULL;
	if (!o || !o->cfg || !o->attester || !o->status)
		return skr_error_set(err, -EINVAL,
		                     "filesystems: no configuration, attester or status");
	r = calloc(1, sizeof(*r));
	if (!r)
		return skr_error_set(err, -ENOMEM, "filesystems: out of memory");
	atomic_init(&r->stopping, false);
	pthread_mutex_init(&r->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cond, &ca);
	pthread_condattr_destroy(&ca);
	r->cfg = o->cfg;
	r->attester = o->attester;
	r->status = o->status;
	r->audit = o->audit;
	r->done_fn = o->done_fn;
	r->done_userdata = o->done_userdata;
	r->work_dir = o->cfg->work_dir ? o->cfg->work_dir : SIDECAR_DEFAULT_WORK_DIR;
	r->dm_prefix = strdup(o->dm_prefix ? o->dm_prefix : SIDECAR_DM_PREFIX);
	r->n = o->cfg->n_filesystems;
	if (!r->dm_prefix || r->n > SIDECAR_FILESYSTEMS_MAX) {
		runner_free(r);
		return skr_error_set(err, -ENOMEM, "filesystems: out of memory");
	}
	for (size_t i = 0; i < r->n; i++) {
		r->fs[i] = (struct runner_fs){
		        .runner = r, .index = i, .conf = &o->cfg->filesystems[i]};
		private = private || o->cfg->filesystems[i].azure_url_private;
	}

	if (private) {
		struct skr_identity_config ic = {
		        .client_id = o->cfg->identity_client_id,
		        .imds_endpoint = o->cfg->imds_endpoint,
		        .ca_bundle = o->cfg->ca_bundle,
		        .timeout_ms = o->cfg->timeout_ms,
		};

		e = skr_identity_new(&ic, &r->identity, err);
		if (e < 0) {
			runner_free(r);
			return skr_error_prefix(err, "filesystems: storage identity: ");
		}
	}
	e = mkdir_p(r->work_dir, 0700);
	if (e < 0) {
		skr_error_set(err, e, "filesystems: cannot create work_dir %s: %s", r->work_dir,
		              skr_strerror(e));
		runner_free(r);
		return e;
	}
	runner_cleanup_stale(r);

	for (size_t i = 0; i < r->n; i++) {
		e = pthread_create(&r->fs[i].thread, NULL, pipeline_thread, &r->fs[i]);
		if (e != 0) {
			/* Those started keep running: stop() waits for and undoes them. */
			log_error("filesystem %zu (%s): cannot start a thread: %s", i,
			          r->fs[i].conf->mount_point, skr_strerror(e));
			sidecar_status_set_fs(r->status, r->fs[i].conf->mount_point,
			                      SIDECAR_FS_FAILED, "mount",
			                      "no thread for the pipeline");
			pthread_mutex_lock(&r->lock);
			r->fs[i].done = r->fs[i].failed = true;
			r->n_done++;
			r->n_failed++;
			pthread_mutex_unlock(&r->lock);
			continue;
		}
		r->fs[i].started = true;
	}
	*out = r;
	return 0;
}

int sidecar_encfs_runner_wait(struct sidecar_encfs_runner *r, long timeout_ms)
{
	struct timespec until;
	int e = 0;

	deadline_to_timespec(now_ms() + (timeout_ms > 0 ? timeout_ms : 0), &until);
	pthread_mutex_lock(&r->lock);
	while (r->n_done < r->n && e != ETIMEDOUT) {
		if (timeout_ms > 0)
			e = pthread_cond_timedwait(&r->cond, &r->lock, &until);
		else
			pthread_cond_wait(&r->cond, &r->lock);
	}
	e = r->n_done < r->n ? -ETIMEDOUT : 0;
	pthread_mutex_unlock(&r->lock);
	return e;
}

bool sidecar_encfs_runner_finished(struct sidecar_encfs_runner *r, size_t *n_failed)
{
	bool done;

	pthread_mutex_lock(&r->lock);
	done = r->n_done == r->n;
	if (n_failed)
		*n_failed = r->n_failed;
	pthread_mutex_unlock(&r->lock);
	return done;
}

bool sidecar_encfs_runner_should_exit(struct sidecar_encfs_runner *r)
{
	size_t failed;

	return sidecar_encfs_runner_finished(r, &failed) && failed > 0 &&
	       r->cfg->on_mount_failure == SIDECAR_ON_FAILURE_EXIT;
}

int sidecar_encfs_runner_stop(struct sidecar_encfs_runner *r, unsigned timeout_ms,
                              struct skr_error *err)
{
	long long deadline;
	int first = 0, e;

	if (!r)
		return 0;
	if (timeout_ms == 0)
		timeout_ms = SIDECAR_UNMOUNT_TIMEOUT_MS;
	deadline = now_ms() + timeout_ms;

	/*
	 * Pipelines still running stop at their next step and undo what they did; a step itself
	 * (a release, a blob retry) is not interrupted, so the wait is bounded by half the budget
	 * and the unmounts keep the other half.
	 */
	atomic_store(&r->stopping, true);
	if (sidecar_encfs_runner_wait(r, timeout_ms / 2) < 0) {
		pthread_mutex_lock(&r->lock);
		for (size_t i = 0; i < r->n; i++)
			if (!r->fs[i].done)
				log_error(
				        "filesystem %zu (%s): still mounting after %u ms; exiting "
				        "without it (the next start cleans up)",
				        i, r->fs[i].conf->mount_point, timeout_ms / 2);
		pthread_mutex_unlock(&r->lock);
		return skr_error_set(err, -ETIMEDOUT,
		                     "filesystems: a pipeline still runs after %u ms",
		                     timeout_ms / 2);
	}
	for (size_t i = 0; i < r->n; i++)
		if (r->fs[i].started)
			pthread_join(r->fs[i].thread, NULL);

	if (r->cfg->ready_file && unlink(r->cfg->ready_file) < 0 && errno != ENOENT)
		log_warn("ready file %s: cannot remove it: %s", r->cfg->ready_file,
		         skr_strerror(errno));

	/* Reverse order: a later filesystem may sit on top of an earlier one's mount point. */
	for (size_t i = r->n; i-- > 0;) {
		struct runner_fs *f = &r->fs[i];
		struct skr_error e1 = {0};
		long long left = deadline - now_ms();

		if (!f->fs)
			continue;
		sidecar_status_set_fs(r->status, f->conf->mount_point, SIDECAR_FS_PENDING, NULL,
		                      NULL);
		e = encfs_fs_unmount(TAKE_PTR(f->fs), left > 0 ? (unsigned)left : 1, &e1);
		if (e < 0) {
			log_error("filesystem %zu (%s): %s", i, f->conf->mount_point,
			          skr_error_message(&e1));
			if (first == 0) {
				first = e;
				if (err && !err->code)
					*err = e1;
			}
		}
	}
	if (first == -ETIMEDOUT)
		return first; /* an unmount thread still uses what the runner borrowed */
	runner_free(r);
	return first;
}
