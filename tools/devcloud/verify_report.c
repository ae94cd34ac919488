/* SPDX-License-Identifier: MIT */
/*
 * `devcloud verify-report`: the attest endpoint's checks on files, offline — e.g. a real
 * AMD-signed report against AMD's Milan root — printing the claims MAA would derive.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "cleanup.h"
#include "devcloud.h"
#include "fileio.h"
#include "json_util.h"
#include "ossl.h"

DEFINE_CLEANUP_FUNC(struct snp_trust_store *, snp_trust_store_free)

#define REPORT_FILE_MAX (64u * 1024)
#define CHAIN_FILE_MAX (256u * 1024)
#define RUNTIME_FILE_MAX (1024u * 1024)

/* A report file holds the raw bytes or their hex (whitespace allowed, e.g. from xxd -p). */
static int load_report(const char *path, uint8_t **out, size_t *out_len, struct skr_error *err)
{
	_cleanup_free_ char *data = NULL, *hex = NULL;
	size_t len, n = 0;
	bool is_hex = true;
	int r;

	r = read_file(path, REPORT_FILE_MAX, &data, &len);
	if (r < 0)
		return skr_error_set(err, r, "--report %s: %s", path, strerror(-r));
	for (size_t i = 0; i < len && is_hex; i++)
		is_hex = isxdigit((unsigned char)data[i]) || isspace((unsigned char)data[i]);
	if (!is_hex || len == 0) {
		*out = (uint8_t *)TAKE_PTR(data);
		*out_len = len;
		return 0;
	}
	hex = malloc(len + 1);
	if (!hex)
		return skr_error_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < len; i++)
		if (!isspace((unsigned char)data[i]))
			hex[n++] = data[i];
	r = hex_decode_alloc(hex, n, out, out_len);
	if (r < 0)
		return skr_error_set(err, r, "--report %s: odd number of hex digits", path);
	return 0;
}

int devcloud_verify_report(const struct devcloud_verify_options *o, json_object **claims_out,
                           struct skr_error *err)
{
	_cleanup_(snp_trust_store_freep) struct snp_trust_store *trust = NULL;
	_cleanup_free_ uint8_t *report = NULL;
	_cleanup_free_ char *chain = NULL, *runtime = NULL;
	_cleanup_json_ json_object *claims = NULL, *probe = NULL;
	struct devcloud_evidence ev = {0};
	size_t report_len, chain_len, runtime_len = 0;
	bool runtime_json = false;
	int r;

	if (!o->report_path || !o->chain_path)
		return skr_error_set(err, -EINVAL, "--report and --chain are required");
	if (o->n_trust_roots == 0)
		return skr_error_set(err, -EINVAL,
		                     "at least one --trust-root PEM is required (e.g. AMD's "
		                     "ask_ark_milan.pem)");
	r = snp_trust_store_new(&trust, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < o->n_trust_roots; i++) {
		r = snp_trust_store_add_file(trust, o->trust_roots[i], err);
		if (r < 0)
			return skr_error_prefix(err, "--trust-root %s: ", o->trust_roots[i]);
	}
	r = load_report(o->report_path, &report, &report_len, err);
	if (r < 0)
		return r;
	r = read_file(o->chain_path, CHAIN_FILE_MAX, &chain, &chain_len);
	if (r < 0)
		return skr_error_set(err, r, "--chain %s: %s", o->chain_path, strerror(-r));
	if (o->runtime_path) {
		r = read_file(o->runtime_path, RUNTIME_FILE_MAX, &runtime, &runtime_len);
		if (r < 0)
			return skr_error_set(err, r, "--runtime-data %s: %s", o->runtime_path,
			                     strerror(-r));
		/* JSON objects become x-ms-runtime, as with dataType JSON; anything else is bytes. */
		runtime_json =
		        json_parse(runtime, runtime_len, "runtime data", &probe, NULL) == 0 &&
		        json_object_is_type(probe, json_type_object);
	}

	r = devcloud_evidence_verify(trust, report, report_len, chain, chain_len, runtime != NULL,
	                             (const uint8_t *)runtime, runtime_len, runtime_json, &ev, err);
	if (r < 0)
		return r;
	claims = json_object_new_object();
	if (!claims ||
	    json_object_object_add(claims, "x-ms-attestation-type",
	                           json_object_new_string("sevsnpvm")) < 0 ||
	    devcloud_claims_add_report(claims, &ev.report, ev.product) < 0 ||
	    (ev.runtime &&
	     json_object_object_add(claims, "x-ms-runtime", json_object_get(ev.runtime)) < 0)) {
		devcloud_evidence_clear(&ev);
		return skr_error_set(err, -ENOMEM, "out of memory");
	}
	devcloud_evidence_clear(&ev);
	*claims_out = TAKE_PTR(claims);
	return 0;
}
