/* SPDX-License-Identifier: MIT */
#include "status.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cleanup.h"
#include "json_util.h"
#include "ossl.h"

/* A failure's step and reason are capped: they come from error messages (one line each). */
#define STATUS_TEXT_MAX 512

struct fs_entry {
	char *mount_point;
	enum sidecar_fs_state state;
	char *step;
	char *reason;
};

struct sidecar_status {
	pthread_mutex_t lock;
	bool ready;
	size_t n;
	struct fs_entry *fs;
};

const char *sidecar_fs_state_name(enum sidecar_fs_state s)
{
	switch (s) {
	case SIDECAR_FS_PENDING:
		return "pending";
	case SIDECAR_FS_MOUNTED:
		return "mounted";
	case SIDECAR_FS_FAILED:
		return "failed";
	}
	return "unknown";
}

int sidecar_status_new(const char *const *mount_points, size_t n, struct sidecar_status **out,
                       struct skr_error *err)
{
	struct sidecar_status *s = calloc(1, sizeof(*s));

	if (!s)
		return skr_error_set(err, -ENOMEM, "status: out of memory");
	pthread_mutex_init(&s->lock, NULL);
	if (n) {
		s->fs = calloc(n, sizeof(*s->fs));
		if (!s->fs) {
			sidecar_status_free(s);
			return skr_error_set(err, -ENOMEM, "status: out of memory");
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (!mount_points[i]) {
			sidecar_status_free(s);
			return skr_error_set(err, -EINVAL,
			                     "status: filesystem %zu has no mount point", i);
		}
		s->fs[i].mount_point = strdup(mount_points[i]);
		if (!s->fs[i].mount_point) {
			sidecar_status_free(s);
			return skr_error_set(err, -ENOMEM, "status: out of memory");
		}
		s->n = i + 1;
	}
	*out = s;
	return 0;
}

void sidecar_status_free(struct sidecar_status *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		free(s->fs[i].mount_point);
		free(s->fs[i].step);
		free(s->fs[i].reason);
	}
	free(s->fs);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void sidecar_status_set_ready(struct sidecar_status *s, bool ready)
{
	pthread_mutex_lock(&s->lock);
	s->ready = ready;
	pthread_mutex_unlock(&s->lock);
}

int sidecar_status_set_fs(struct sidecar_status *s, const char *mount_point,
                          enum sidecar_fs_state state, const char *step, const char *reason)
{
	char *new_step = NULL, *new_reason = NULL;
	int r = -ENOENT;

	if (state == SIDECAR_FS_FAILED) {
		if (step && !(new_step = strndup(step, STATUS_TEXT_MAX)))
			return -ENOMEM;
		if (reason && !(new_reason = strndup(reason, STATUS_TEXT_MAX))) {
			free(new_step);
			return -ENOMEM;
		}
	}
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->n; i++) {
		struct fs_entry *e = &s->fs[i];

		if (strcmp(e->mount_point, mount_point) != 0)
			continue;
		e->state = state;
		free(e->step);
		free(e->reason);
		e->step = TAKE_PTR(new_step);
		e->reason = TAKE_PTR(new_reason);
		r = 0;
		break;
	}
	pthread_mutex_unlock(&s->lock);
	free(new_step);
	free(new_reason);
	return r;
}

static bool status_ok_locked(const struct sidecar_status *s)
{
	if (!s->ready)
		return false;
	for (size_t i = 0; i < s->n; i++)
		if (s->fs[i].state != SIDECAR_FS_MOUNTED)
			return false;
	return true;
}

bool sidecar_status_ok(struct sidecar_status *s)
{
	bool ok;

	pthread_mutex_lock(&s->lock);
	ok = status_ok_locked(s);
	pthread_mutex_unlock(&s->lock);
	return ok;
}

/* "ready": all good; "degraded": a filesystem failed (the API still serves); else "starting". */
static const char *overall_state_locked(const struct sidecar_status *s)
{
	if (status_ok_locked(s))
		return "ready";
	for (size_t i = 0; i < s->n; i++)
		if (s->fs[i].state == SIDECAR_FS_FAILED)
			return "degraded";
	return "starting";
}

static int add_string(json_object *obj, const char *key, const char *value)
{
	json_object *v = json_object_new_string(value);

	if (!v)
		return -ENOMEM;
	if (json_object_object_add(obj, key, v) < 0) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

static int status_build_locked(const struct sidecar_status *s, json_object *root)
{
	json_object *arr;
	bool ok = status_ok_locked(s);

	if (add_string(root, "message", ok ? "Status OK" : "Status NOT OK") < 0 ||
	    add_string(root, "state", overall_state_locked(s)) < 0)
		return -ENOMEM;
	arr = json_object_new_array();
	if (!arr || json_object_object_add(root, "filesystems", arr) < 0) {
		json_object_put(arr);
		return -ENOMEM;
	}
	for (size_t i = 0; i < s->n; i++) {
		const struct fs_entry *e = &s->fs[i];
		json_object *o = json_object_new_object();

		if (!o || json_object_array_add(arr, o) < 0) {
			json_object_put(o);
			return -ENOMEM;
		}
		if (add_string(o, "mount_point", e->mount_point) < 0 ||
		    add_string(o, "state", sidecar_fs_state_name(e->state)) < 0)
			return -ENOMEM;
		if (e->step && add_string(o, "step", e->step) < 0)
			return -ENOMEM;
		if (e->reason && add_string(o, "reason", e->reason) < 0)
			return -ENOMEM;
	}
	return 0;
}

int sidecar_status_to_json(struct sidecar_status *s, char **out)
{
	_cleanup_json_ json_object *root = json_object_new_object();
	int r;

	if (!root)
		return -ENOMEM;
	pthread_mutex_lock(&s->lock);
	r = status_build_locked(s, root);
	pthread_mutex_unlock(&s->lock);
	if (r < 0)
		return r;
	*out = strdup(json_compact(root));
	return *out ? 0 : -ENOMEM;
}
