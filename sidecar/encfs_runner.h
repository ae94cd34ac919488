/* SPDX-License-Identifier: MIT */
/*
 * The daemon's filesystems (EncfsSideCarArgs.azure_filesystems, protocols.md §7.3). Private to
 * sidecar/.
 *
 * Start: the work directory is created and whatever a previous run of ours left behind is
 * cleaned up (mounts below work_dir, hidden ".filesystem-*" mounts beside the mount points,
 * device-mapper mappings named with our prefix, a stale ready file); then one thread per
 * filesystem runs libencfs's pipeline (encfs_fs_mount) in parallel, with the LUKS passphrase
 * from secure key release through the daemon's attester (oct key of exactly 32 bytes as it is,
 * RSA key through HKDF with key_derivation; raw_key only in builds that allow it) and, for
 * azure_url_private, a bearer token for the storage account from the managed identity.
 *
 * /status follows each filesystem: pending, mounted, or failed with the step
 * (encfs_step_name) and the reason (without secrets or SAS signatures). Each release is
 * audited like an API release. Once every filesystem is mounted the ready file, if configured,
 * is written atomically; when all pipelines are over @done_fn is called (from a runner thread).
 *
 * Stop: waits for pipelines still running, then unmounts every mounted filesystem in reverse
 * order (unpublish, unmount, close LUKS and verity, stop FUSE) within the time given, and
 * removes the ready file.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "skr_error.h"

/* Device-mapper names: <prefix><index>-crypt and <prefix><index>-verity. */
#define SIDECAR_DM_PREFIX "confidential-sidecar-"
/* How long SIGTERM gives the unmounts, all filesystems together. */
#define SIDECAR_UNMOUNT_TIMEOUT_MS 20000

struct skr_attester;
struct sidecar_status;
struct sidecar_audit;

struct sidecar_encfs_runner_options {
	const struct sidecar_config *cfg; /* borrowed: must outlive the runner */
	struct skr_attester *attester;    /* for the releases (thread-safe) */
	struct sidecar_status *status;    /* created with cfg's mount points, in order */
	struct sidecar_audit *audit;      /* may be NULL: releases are not audited */
	const char *dm_prefix;            /* NULL = SIDECAR_DM_PREFIX */
	void (*done_fn)(void *userdata);  /* may be NULL */
	void *done_userdata;
};

struct sidecar_encfs_runner;

/*
 * Clean up stale state, then start one pipeline thread per filesystem and return at once.
 * Fails only when nothing could be started (the work directory cannot be created, no thread).
 */
int sidecar_encfs_runner_start(const struct sidecar_encfs_runner_options *o,
                               struct sidecar_encfs_runner **out, struct skr_error *err);

/* Wait until every pipeline is over, at most @timeout_ms (0: no limit). 0 or -ETIMEDOUT. */
int sidecar_encfs_runner_wait(struct sidecar_encfs_runner *r, long timeout_ms);

/* Whether every pipeline is over, and how many of them failed. */
bool sidecar_encfs_runner_finished(struct sidecar_encfs_runner *r, size_t *n_failed);

/*
 * Whether the daemon should exit now: every pipeline is over, one failed and the configuration
 * says on_mount_failure "exit" (the default).
 */
bool sidecar_encfs_runner_should_exit(struct sidecar_encfs_runner *r);

/*
 * Tear down within @timeout_ms (0 = SIDECAR_UNMOUNT_TIMEOUT_MS): wait for pipelines still
 * running, unmount the mounted filesystems in reverse order, remove the ready file, free @r.
 * -ETIMEDOUT when a pipeline or an unmount is still running at the deadline: @r is then left
 * allocated for the threads that still use it (and the attester must not be freed); the caller
 * exits the process and the next start cleans up. Otherwise 0 or the first unmount failure.
 */
int sidecar_encfs_runner_stop(struct sidecar_encfs_runner *r, unsigned timeout_ms,
                              struct skr_error *err);

/*
 * @s (a failure reason of @conf's filesystem, NUL-terminated in @size bytes) with every SAS
 * signature value ("sig=…"), the configured bearer token and raw_key replaced, in place; cut
 * at the end when the replacement is longer. Applied before a reason reaches /status or the log.
 */
void sidecar_encfs_reason_scrub(char *s, size_t size, const struct sidecar_filesystem *conf);
