/* SPDX-License-Identifier: MIT */
/*
 * The daemon's log sink for common/log.h. Private to sidecar/.
 *
 * Human lines ("2026-01-02T03:04:05.678Z info  message") by default, JSON lines
 * ({"time","level","msg"}) with --log-format json; to stderr, or to a file opened
 * O_APPEND|O_CLOEXEC with mode 0600 that SIGHUP reopens (logrotate's "create" + HUP).
 *
 * Every line passes a redaction safety net before it is written. Code must not log secrets in
 * the first place (style.md); this only catches what slips through: anything shaped like a JWT
 * (three or five base64url segments separated by dots, at least 100 characters), the value of a
 * SAS `sig=` parameter, the credential after "Bearer ", and the private members of a JWK
 * ("k", "d", "p", "q", "dp", "dq", "qi") are replaced by "<redacted>".
 */
#pragma once

#include <stddef.h>

#include "config.h"
#include "log.h"
#include "skr_error.h"

struct sidecar_logsink;

/*
 * A sink writing @format lines to @path (NULL = stderr). The file is created 0600 if missing;
 * an existing file is appended to. Errors name the path.
 */
int sidecar_logsink_new(const char *path, enum sidecar_log_format format,
                        struct sidecar_logsink **out, struct skr_error *err);

/* Route log_msg() to @s (log_set_sink). */
void sidecar_logsink_install(struct sidecar_logsink *s);

/*
 * Reopen the file (after rotation): the new file replaces the old descriptor atomically
 * (dup3), so threads logging meanwhile write to one or the other, never to a closed one.
 * A no-op for stderr. On failure the old file stays in use.
 */
int sidecar_logsink_reopen(struct sidecar_logsink *s, struct skr_error *err);

/* Uninstall (if installed) and close. */
void sidecar_logsink_free(struct sidecar_logsink *s);

/* Write one message at @level regardless of the log level (audit records). */
void sidecar_logsink_write(struct sidecar_logsink *s, enum log_level level, const char *msg);

/*
 * Write an audit record (a JSON object text) regardless of the log level: in JSON format the
 * record is the line itself, in human format it follows "audit ".
 */
void sidecar_logsink_write_audit(struct sidecar_logsink *s, const char *record);

/*
 * The redaction safety net: copy @in to @out (at most @size bytes with the NUL; truncated
 * beyond) with every secret-shaped part replaced. Returns the number of replacements.
 */
size_t sidecar_log_redact(const char *in, char *out, size_t size);

/* One formatted, redacted line with its '\n' (malloc'ed), for tests and the sink. */
int sidecar_logsink_format(enum sidecar_log_format format, enum log_level level, const char *msg,
                           char **line);
