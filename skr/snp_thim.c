/* SPDX-License-Identifier: MIT */
/*
 * THIM certification JSON (protocols.md §3.4): what a THIM endpoint answers and what the ACI
 * security context carries base64-encoded in host-amd-cert-base64. Untrusted input: every field
 * is type-checked and named in errors; the certificates themselves are only checked for being
 * PEM here and are verified later against the AMD roots.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "json_util.h"
#include "ossl.h"
#include "snp_cert_internal.h"

/* A required, non-empty string holding at least one PEM certificate; duplicated into *out. */
static int get_pem(json_object *root, const char *field, char **out, struct skr_error *err)
{
	const char *v;
	int r = json_get_string(root, field, true, &v, err);

	if (r < 0) {
		skr_error_prefix(err, "THIM: ");
		return r;
	}
	if (!strstr(v, SNP_PEM_CERT_MARKER))
		return skr_error_set(err, -EINVAL,
		                     "THIM: field '%s' does not hold a PEM certificate (no '%s')",
		                     field, SNP_PEM_CERT_MARKER);
	*out = strdup(v);
	if (!*out)
		return skr_error_set(err, -ENOMEM, "THIM: out of memory");
	return 0;
}

/* Exactly 16 hex digits: REPORTED_TCB as printed by the host (protocols.md preamble). */
static int parse_tcbm(json_object *root, struct snp_thim *out, struct skr_error *err)
{
	const char *v;
	int r = json_get_string(root, "tcbm", true, &v, err);

	if (r < 0) {
		skr_error_prefix(err, "THIM: ");
		return r;
	}
	if (strlen(v) != 16)
		return skr_error_set(err, -EINVAL,
		                     "THIM: field 'tcbm' must be 16 hex digits, got %zu characters",
		                     strlen(v));
	for (size_t i = 0; i < 16; i++)
		if (!isxdigit((unsigned char)v[i]))
			return skr_error_set(
			        err, -EINVAL,
			        "THIM: field 'tcbm' must be 16 hex digits, character %zu "
			        "is not one",
			        i + 1);
	/* Sixteen validated hex digits cannot overflow a u64, and strtoull has nothing to skip. */
	out->tcbm = strtoull(v, NULL, 16);
	memcpy(out->tcbm_str, v, 16);
	out->tcbm_str[16] = '\0';
	return 0;
}

/* "86400" or 86400; absent = 0 (no advice). */
static int parse_cache_control(json_object *root, struct snp_thim *out, struct skr_error *err)
{
	json_object *v;

	out->cache_control = 0;
	if (!json_object_object_get_ex(root, "cacheControl", &v) ||
	    json_object_is_type(v, json_type_null))
		return 0;
	if (json_object_is_type(v, json_type_int)) {
		int64_t n;

		errno = 0;
		n = json_object_get_int64(v);
		if (errno || n < 0 || n > LONG_MAX)
			return skr_error_set(err, -EINVAL,
			                     "THIM: field 'cacheControl' is out of range");
		out->cache_control = (long)n;
		return 0;
	}
	if (json_object_is_type(v, json_type_string)) {
		const char *s = json_object_get_string(v);
		char *end;
		long long n;

		if (!isdigit((unsigned char)s[0]))
			return skr_error_set(
			        err, -EINVAL,
			        "THIM: field 'cacheControl' must be a number of seconds");
		errno = 0;
		n = strtoll(s, &end, 10);
		if (errno || *end || n > LONG_MAX)
			return skr_error_set(
			        err, -EINVAL,
			        "THIM: field 'cacheControl' must be a number of seconds");
		out->cache_control = (long)n;
		return 0;
	}
	return skr_error_set(err, -EINVAL,
	                     "THIM: field 'cacheControl': expected a string or a number");
}

int snp_thim_parse(const char *json, size_t len, struct snp_thim *out, struct skr_error *err)
{
	_cleanup_json_ json_object *root = NULL;
	struct snp_thim t = {0};
	int r;

	memset(out, 0, sizeof(*out));
	if (!json)
		return skr_error_set(err, -EINVAL, "THIM: no document");
	r = json_parse(json, len, "THIM certification", &root, err);
	if (r < 0)
		return r;
	if (!json_object_is_type(root, json_type_object))
		return skr_error_set(err, -EINVAL, "THIM: expected a JSON object");
	r = get_pem(root, "vcekCert", &t.vcek_pem, err);
	if (r >= 0)
		r = parse_tcbm(root, &t, err);
	if (r >= 0)
		r = get_pem(root, "certificateChain", &t.chain_pem, err);
	if (r >= 0)
		r = parse_cache_control(root, &t, err);
	if (r < 0) {
		snp_thim_clear(&t);
		return r;
	}
	*out = t;
	return 0;
}

void snp_thim_clear(struct snp_thim *t)
{
	if (!t)
		return;
	free(t->vcek_pem);
	free(t->chain_pem);
	memset(t, 0, sizeof(*t));
}
