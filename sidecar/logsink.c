/* SPDX-License-Identifier: MIT */
#include "logsink.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cleanup.h"
#include "json_util.h"
#include "ossl.h"

/* JWTs shorter than this are not credentials anyone issues; shorter dotted runs are host names. */
#define REDACT_JWT_MIN 100
/* "Bearer <x>" with a shorter x is prose ("the Bearer token was refused"), not a credential. */
#define REDACT_BEARER_MIN 20
#define REDACTED "<redacted>"

struct sidecar_logsink {
	int fd;
	char *path; /* NULL: stderr */
	enum sidecar_log_format format;
	bool installed;
};

/* ---------------------------------------------------------------------------------------------
 * Redaction
 * ------------------------------------------------------------------------------------------- */

struct outbuf {
	char *p;
	size_t size, len;
};

static void out_put(struct outbuf *o, const char *s, size_t n)
{
	size_t room = o->size - 1 - o->len;

	if (n > room)
		n = room;
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static bool is_b64url(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '_';
}

static bool word_start(const char *in, size_t i)
{
	return i == 0 || !(isalnum((unsigned char)in[i - 1]) || in[i - 1] == '_');
}

/* A run of base64url characters and dots at @s: JWS (3 segments) or JWE (5) long enough? */
static size_t jwt_length(const char *s, size_t run)
{
	size_t end = run, dots = 0, seg_start = 0, nonempty = 0;

	while (end && s[end - 1] == '.') /* a sentence's full stop is not part of the token */
		end--;
	if (end < REDACT_JWT_MIN)
		return 0;
	for (size_t i = 0; i <= end; i++) {
		if (i == end || s[i] == '.') {
			if (i > seg_start)
				nonempty++;
			if (i < end)
				dots++;
			seg_start = i + 1;
		}
	}
	/* The signature of an unsigned token may be empty; header and payload never are. */
	if ((dots == 2 || dots == 4) && nonempty >= dots)
		return end;
	return 0;
}

/* `sig=VALUE` (a SAS signature): length of VALUE, 0 if @s is not one. */
static size_t sas_sig_value(const char *in, size_t i)
{
	size_t n = 0;

	if (strncasecmp(in + i, "sig=", 4) != 0 || !word_start(in, i))
		return 0;
	while (in[i + 4 + n] && !strchr("&\"'<> \t\r\n;,", in[i + 4 + n]))
		n++;
	return n;
}

/* `Bearer VALUE`: length of VALUE (0 if @s is not one). */
static size_t bearer_value(const char *in, size_t i)
{
	size_t n = 0;

	if (strncasecmp(in + i, "Bearer ", 7) != 0 || !word_start(in, i))
		return 0;
	while (in[i + 7 + n] && !strchr("\"' \t\r\n,", in[i + 7 + n]))
		n++;
	return n >= REDACT_BEARER_MIN ? n : 0;
}

/*
 * A private JWK member `"d": "VALUE"` (or its escaped form `\"d\":\"VALUE\"` inside a JSON
 * string): *prefix_len is the length up to the value, the return value the value's length.
 */
static size_t jwk_private_value(const char *in, size_t i, size_t *prefix_len)
{
	static const char *const names[] = {"k", "d", "p", "q", "dp", "dq", "qi"};
	const char *q = in[i] == '\\' ? "\\\"" : "\"";
	size_t ql = strlen(q), p = i, n = 0;

	if (strncmp(in + i, q, ql) != 0)
		return 0;
	p += ql;
	for (size_t k = 0; k < ELEMENTSOF(names); k++) {
		size_t nl = strlen(names[k]);
		size_t v = p + nl;

		if (strncmp(in + p, names[k], nl) != 0 || strncmp(in + v, q, ql) != 0)
			continue;
		v += ql;
		while (in[v] == ' ')
			v++;
		if (in[v] != ':')
			return 0;
		v++;
		while (in[v] == ' ')
			v++;
		if (strncmp(in + v, q, ql) != 0)
			return 0;
		v += ql;
		while (in[v + n] && in[v + n] != '"' && in[v + n] != '\\')
			n++;
		*prefix_len = v - i;
		return n;
	}
	return 0;
}

size_t sidecar_log_redact(const char *in, char *out, size_t size)
{
	struct outbuf o = {.p = out, .size = size};
	size_t count = 0, i = 0;

	if (!size)
		return 0;
	out[0] = '\0';
	while (in[i]) {
		size_t n, prefix;

		if ((n = sas_sig_value(in, i))) {
			out_put(&o, in + i, 4);
			out_put(&o, REDACTED, strlen(REDACTED));
			i += 4 + n;
			count++;
			continue;
		}
		if ((n = bearer_value(in, i))) {
			out_put(&o, in + i, 7);
			out_put(&o, REDACTED, strlen(REDACTED));
			i += 7 + n;
			count++;
			continue;
		}
		if ((in[i] == '"' || in[i] == '\\') && (n = jwk_private_value(in, i, &prefix))) {
			out_put(&o, in + i, prefix);
			out_put(&o, REDACTED, strlen(REDACTED));
			i += prefix + n;
			count++;
			continue;
		}
		if (is_b64url(in[i]) || in[i] == '.') {
			size_t run = 0, jwt;

			while (is_b64url(in[i + run]) || in[i + run] == '.')
				run++;
			jwt = jwt_length(in + i, run);
			if (jwt) {
				out_put(&o, REDACTED, strlen(REDACTED));
				i += jwt;
				count++;
				continue;
			}
			/* Not a token: copied whole, so that "xsig=" or "aBearer " never match. */
			out_put(&o, in + i, run);
			i += run;
			continue;
		}
		out_put(&o, in + i, 1);
		i++;
	}
	return count;
}

/* ---------------------------------------------------------------------------------------------
 * Formatting
 * ------------------------------------------------------------------------------------------- */

static void timestamp(char *buf, size_t size)
{
	struct timespec ts;
	struct tm tm;
	char base[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, size, "%s.%03ldZ", base, ts.tv_nsec / 1000000);
}

/* Redacted copy of @msg (malloc'ed). Replacements may lengthen short values ("sig=a"). */
static char *redacted_copy(const char *msg)
{
	size_t size = strlen(msg) * 4 + 64;
	char *buf = malloc(size);

	if (buf)
		sidecar_log_redact(msg, buf, size);
	return buf;
}

int sidecar_logsink_format(enum sidecar_log_format format, enum log_level level, const char *msg,
                           char **line)
{
	_cleanup_free_ char *clean = redacted_copy(msg);
	char stamp[48];

	if (!clean)
		return -ENOMEM;
	timestamp(stamp, sizeof(stamp));
	if (format == SIDECAR_LOG_JSON) {
		_cleanup_json_ json_object *o = json_object_new_object();

		if (!o || json_object_object_add(o, "time", json_object_new_string(stamp)) < 0 ||
		    json_object_object_add(o, "level",
		                           json_object_new_string(log_level_name(level))) < 0 ||
		    json_object_object_add(o, "msg", json_object_new_string(clean)) < 0)
			return -ENOMEM;
		return asprintf(line, "%s\n", json_compact(o)) < 0 ? -ENOMEM : 0;
	}
	return asprintf(line, "%s %-5s %s\n", stamp, log_level_name(level), clean) < 0 ? -ENOMEM
	                                                                               : 0;
}

/* One write(2) per line: O_APPEND makes each line land whole even with several threads. */
static void write_line(struct sidecar_logsink *s, const char *line)
{
	size_t len = strlen(line), off = 0;

	while (off < len) {
		ssize_t n = write(s->fd, line + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* nowhere left to report a failing log */
		off += (size_t)n;
	}
}

void sidecar_logsink_write(struct sidecar_logsink *s, enum log_level level, const char *msg)
{
	_cleanup_free_ char *line = NULL;

	if (sidecar_logsink_format(s->format, level, msg, &line) == 0)
		write_line(s, line);
}

void sidecar_logsink_write_audit(struct sidecar_logsink *s, const char *record)
{
	_cleanup_free_ char *line = NULL;

	if (s->format == SIDECAR_LOG_JSON) {
		_cleanup_free_ char *clean = redacted_copy(record);

		if (clean && asprintf(&line, "%s\n", clean) >= 0)
			write_line(s, line);
		return;
	}
	if (asprintf(&line, "audit %s", record) >= 0)
		sidecar_logsink_write(s, LOG_LEVEL_INFO, line);
}

static void sink(enum log_level level, const char *msg, void *userdata)
{
	sidecar_logsink_write(userdata, level, msg);
}

/* ---------------------------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------------------------- */

static int open_log(const char *path, struct skr_error *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600);

	if (fd < 0)
		return skr_error_set(err, -errno, "log file %s: cannot open for appending: %s",
		                     path, skr_strerror(errno));
	return fd;
}

int sidecar_logsink_new(const char *path, enum sidecar_log_format format,
                        struct sidecar_logsink **out, struct skr_error *err)
{
	struct sidecar_logsink *s = calloc(1, sizeof(*s));

	if (!s)
		return skr_error_set(err, -ENOMEM, "log: out of memory");
	s->format = format;
	s->fd = STDERR_FILENO;
	if (path && *path) {
		s->path = strdup(path);
		if (!s->path) {
			free(s);
			return skr_error_set(err, -ENOMEM, "log: out of memory");
		}
		s->fd = open_log(path, err);
		if (s->fd < 0) {
			int r = s->fd;

			free(s->path);
			free(s);
			return r;
		}
	}
	*out = s;
	return 0;
}

void sidecar_logsink_install(struct sidecar_logsink *s)
{
	log_set_sink(sink, s);
	s->installed = true;
}

int sidecar_logsink_reopen(struct sidecar_logsink *s, struct skr_error *err)
{
	int fd;

	if (!s->path)
		return 0;
	fd = open_log(s->path, err);
	if (fd < 0)
		return fd;
	if (dup3(fd, s->fd, O_CLOEXEC) < 0) {
		int r = -errno;

		close(fd);
		return skr_error_set(err, r, "log file %s: cannot reopen: %s", s->path,
		                     skr_strerror(r));
	}
	close(fd);
	return 0;
}

void sidecar_logsink_free(struct sidecar_logsink *s)
{
	if (!s)
		return;
	if (s->installed)
		log_set_sink(NULL, NULL);
	if (s->path)
		close(s->fd);
	free(s->path);
	free(s);
}
