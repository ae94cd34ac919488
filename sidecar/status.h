/* SPDX-License-Identifier: MIT */
/*
 * The daemon's status model, served by GET /status. Private to sidecar/.
 *
 * One overall readiness flag (the API is serving) plus one entry per configured filesystem
 * (EncfsSideCarArgs.azure_filesystems), each pending, mounted or failed; a failure names the
 * step that failed ("release key", "open LUKS", "mount", ...) and the reason. The setters are
 * thread-safe: the mount pipeline (one thread per filesystem) and the HTTP threads share it.
 *
 * /status body: {"message": "Status OK" | "Status NOT OK", "state": "starting" | "ready" |
 * "degraded", "filesystems": [{"mount_point", "state", "step"?, "reason"?}]}. "message" is the
 * Go sidecar's field that its clients compare with "Status OK": it says "Status OK" exactly when
 * state is "ready" (the API serves and every filesystem is mounted), so an application that
 * waits for "Status OK" also waits for its filesystems.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "skr_error.h"

enum sidecar_fs_state {
	SIDECAR_FS_PENDING = 0,
	SIDECAR_FS_MOUNTED,
	SIDECAR_FS_FAILED,
};

/* "pending", "mounted", "failed" */
const char *sidecar_fs_state_name(enum sidecar_fs_state s);

struct sidecar_status;

/* A status with @n mount points (copied), all pending, not ready. */
int sidecar_status_new(const char *const *mount_points, size_t n, struct sidecar_status **out,
                       struct skr_error *err);
void sidecar_status_free(struct sidecar_status *s);

/* The API serves (true) or stops serving (false, at shutdown). */
void sidecar_status_set_ready(struct sidecar_status *s, bool ready);

/*
 * Set the state of the filesystem mounted at @mount_point. @step and @reason (may be NULL) are
 * kept for SIDECAR_FS_FAILED only and must not contain secrets. -ENOENT for an unknown mount
 * point.
 */
int sidecar_status_set_fs(struct sidecar_status *s, const char *mount_point,
                          enum sidecar_fs_state state, const char *step, const char *reason);

/* True when ready and every filesystem is mounted. */
bool sidecar_status_ok(struct sidecar_status *s);

/* The /status body (malloc'ed, compact JSON). Returns 0 or -ENOMEM. */
int sidecar_status_to_json(struct sidecar_status *s, char **out);
