/* SPDX-License-Identifier: MIT */
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include "b64.h"
#include "cleanup.h"
#include "json_util.h"
#include "log.h"
#include "logsink.h"
#include "ossl.h"

/* A JWT payload bigger than this is not an MAA token worth decoding for its jti. */
#define AUDIT_TOKEN_MAX (64 * 1024)

struct sidecar_audit {
	struct sidecar_logsink *log;
	char *path;
	int fd;
	atomic_bool failing; /* the last write to the file failed (reported once) */
};

int sidecar_audit_token_jti(const char *token, char **out)
{
	const char *p1, *p2;
	_cleanup_free_ uint8_t *payload = NULL;
	_cleanup_json_ json_object *claims = NULL;
	const char *jti;
	size_t len;

	if (!token || strnlen(token, AUDIT_TOKEN_MAX + 1) > AUDIT_TOKEN_MAX)
		return -EINVAL;
	p1 = strchr(token, '.');
	p2 = p1 ? strchr(p1 + 1, '.') : NULL;
	if (!p2)
		return -EINVAL;
	if (b64_decode(p1 + 1, (size_t)(p2 - p1 - 1), B64_ACCEPT_URL, &payload, &len) < 0)
		return -EINVAL;
	if (json_parse((const char *)payload, len, "token payload", &claims, NULL) < 0 ||
	    json_get_string(claims, "jti", true, &jti, NULL) < 0)
		return -EINVAL;
	*out = strdup(jti);
	return *out ? 0 : -ENOMEM;
}

static int add_str(json_object *o, const char *key, const char *value)
{
	json_object *v;

	if (!value)
		return 0;
	v = json_object_new_string(value);
	if (!v || json_object_object_add(o, key, v) < 0) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

int sidecar_audit_format(const struct sidecar_audit_event *ev, char **out)
{
	_cleanup_json_ json_object *o = json_object_new_object();
	_cleanup_free_ char *jti = NULL;
	char stamp[48], base[32], hex[2 * 64 + 1];
	struct timespec ts;
	struct tm tm;

	if (!o)
		return -ENOMEM;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(stamp, sizeof(stamp), "%s.%03ldZ", base, ts.tv_nsec / 1000000);
	if (add_str(o, "type", "audit") < 0 || add_str(o, "time", stamp) < 0 ||
	    add_str(o, "endpoint", ev->endpoint) < 0 || add_str(o, "outcome", ev->outcome) < 0 ||
	    json_object_object_add(o, "status", json_object_new_int((int)ev->status)) < 0 ||
	    add_str(o, "maa_endpoint", ev->maa_endpoint) < 0 ||
	    add_str(o, "akv_endpoint", ev->akv_endpoint) < 0 || add_str(o, "kid", ev->kid) < 0 ||
	    add_str(o, "key_id", ev->key_id) < 0 ||
	    add_str(o, "key_fingerprint", ev->key_fingerprint) < 0)
		return -ENOMEM;
	if (ev->token_jti && *ev->token_jti) {
		if (add_str(o, "token_jti", ev->token_jti) < 0)
			return -ENOMEM;
	} else if (ev->token && sidecar_audit_token_jti(ev->token, &jti) == 0 &&
	           add_str(o, "token_jti", jti) < 0) {
		return -ENOMEM;
	}
	if (ev->report_sha256 && *ev->report_sha256) {
		if (add_str(o, "report_sha256", ev->report_sha256) < 0)
			return -ENOMEM;
	} else if (ev->report) {
		uint8_t md[32];
		unsigned md_len = 0;

		if (EVP_Digest(ev->report, ev->report_len, md, &md_len, EVP_sha256(), NULL) != 1)
			return -ENOMEM;
		hex_encode(md, md_len, hex);
		if (add_str(o, "report_sha256", hex) < 0)
			return -ENOMEM;
	}
	if (ev->report_data) {
		hex_encode(ev->report_data, 64, hex);
		if (add_str(o, "report_data", hex) < 0)
			return -ENOMEM;
	}
	if (add_str(o, "reason", ev->reason) < 0)
		return -ENOMEM;
	*out = strdup(json_compact(o));
	return *out ? 0 : -ENOMEM;
}

static int open_audit(const char *path, struct skr_error *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600);

	if (fd < 0)
		return skr_error_set(err, -errno, "audit file %s: cannot open for appending: %s",
		                     path, skr_strerror(errno));
	return fd;
}

int sidecar_audit_new(const char *path, struct sidecar_logsink *log, struct sidecar_audit **out,
                      struct skr_error *err)
{
	struct sidecar_audit *a = calloc(1, sizeof(*a));

	if (!a)
		return skr_error_set(err, -ENOMEM, "audit: out of memory");
	a->log = log;
	a->fd = -1;
	if (path && *path) {
		a->path = strdup(path);
		if (!a->path) {
			free(a);
			return skr_error_set(err, -ENOMEM, "audit: out of memory");
		}
		a->fd = open_audit(path, err);
		if (a->fd < 0) {
			int r = a->fd;

			free(a->path);
			free(a);
			return r;
		}
	}
	*out = a;
	return 0;
}

void sidecar_audit_free(struct sidecar_audit *a)
{
	if (!a)
		return;
	if (a->fd >= 0)
		close(a->fd);
	free(a->path);
	free(a);
}

int sidecar_audit_reopen(struct sidecar_audit *a, struct skr_error *err)
{
	int fd;

	if (!a->path)
		return 0;
	fd = open_audit(a->path, err);
	if (fd < 0)
		return fd;
	/* dup3: a record written meanwhile lands in the old or the new file, never nowhere. */
	if (dup3(fd, a->fd, O_CLOEXEC) < 0) {
		int r = -errno;

		close(fd);
		return skr_error_set(err, r, "audit file %s: cannot reopen: %s", a->path,
		                     skr_strerror(r));
	}
	close(fd);
	return 0;
}

static int write_all(int fd, const char *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = write(fd, buf + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		off += (size_t)n;
	}
	return 0;
}

void sidecar_audit_record(struct sidecar_audit *a, const struct sidecar_audit_event *ev)
{
	_cleanup_free_ char *record = NULL, *line = NULL;

	if (sidecar_audit_format(ev, &record) < 0) {
		log_error("audit: out of memory: a %s record for %s is lost", ev->outcome,
		          ev->endpoint);
		return;
	}
	if (a->log)
		sidecar_logsink_write_audit(a->log, record);
	else
		log_info("audit %s", record);
	if (a->fd < 0)
		return;
	if (asprintf(&line, "%s\n", record) < 0) {
		log_error("audit: out of memory: a record for %s is lost", ev->endpoint);
		return;
	}
	{
		int r = write_all(a->fd, line, strlen(line));

		if (r < 0 && !atomic_exchange(&a->failing, true))
			log_error("audit file %s: write failed: %s (records continue in the log)",
			          a->path, skr_strerror(r));
		else if (r == 0)
			atomic_store(&a->failing, false);
	}
}
