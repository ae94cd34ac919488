/* SPDX-License-Identifier: MIT */
/*
 * The audit trail: one JSON line per attestation and key release, success or failure, written to
 * the log (whatever its level) and, when configured, appended to an audit file (O_APPEND, 0600,
 * reopened on SIGHUP). Private to sidecar/.
 *
 * A record: {"type":"audit","time","endpoint","outcome","status", then when known
 * "maa_endpoint","akv_endpoint","kid","key_id","key_fingerprint","token_jti","report_sha256",
 * "report_data","reason"}. Never key material, tokens or runtime data: a token is represented by
 * its jti, a report by its SHA-256, a released key by skr_key_fingerprint().
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "skr_error.h"

struct sidecar_logsink;

struct sidecar_audit_event {
	const char *endpoint;        /* API path, "/key/release" */
	const char *outcome;         /* "success", "denied" (403), "error" */
	unsigned status;             /* the HTTP status answered */
	const char *maa_endpoint;    /* NULL when not part of the request */
	const char *akv_endpoint;    /* NULL when not part of the request */
	const char *kid;             /* the requested key name */
	const char *key_id;          /* the released version's id (vault URL) */
	const char *key_fingerprint; /* skr_key_fingerprint() of the released key */
	const char *token;           /* an MAA token: only its "jti" claim is recorded */
	const char *token_jti;       /* the jti when known without the token (takes precedence) */
	const uint8_t *report;       /* an SNP report: only its SHA-256 is recorded */
	size_t report_len;
	const char *report_sha256;  /* the report's SHA-256 (hex) when known without the report */
	const uint8_t *report_data; /* REPORT_DATA (64 bytes, public): hex */
	const char *reason;         /* the error message (carries no secrets) */
};

struct sidecar_audit;

/*
 * Records go to @log (may be NULL: log_msg() at info) and, when @path is not NULL, to @path
 * (created 0600, appended to). Errors name the path.
 */
int sidecar_audit_new(const char *path, struct sidecar_logsink *log, struct sidecar_audit **out,
                      struct skr_error *err);
void sidecar_audit_free(struct sidecar_audit *a);

/* Record @ev. A failing audit file is reported in the log (once per failure streak). */
void sidecar_audit_record(struct sidecar_audit *a, const struct sidecar_audit_event *ev);

/* Reopen the audit file after rotation (SIGHUP); a no-op without one. */
int sidecar_audit_reopen(struct sidecar_audit *a, struct skr_error *err);

/* The record's JSON text for @ev (malloc'ed, no newline); exposed for tests. */
int sidecar_audit_format(const struct sidecar_audit_event *ev, char **out);

/* The "jti" claim of a JWT without verifying it (malloc'ed), or -EINVAL. */
int sidecar_audit_token_jti(const char *token, char **out);
