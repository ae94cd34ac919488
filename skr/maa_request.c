/* SPDX-License-Identifier: MIT */
/*
 * The MAA SEV-SNP attest request body (protocols.md §4.1): built by the attester exactly as the
 * Go anchor marshals it, parsed by the local MAA-compatible service from untrusted input.
 *
 * The parser is liberal in base64 spelling (standard or URL alphabet, padded or not: the anchor
 * sends Go's padded URLEncoding, MAA's documentation samples are unpadded) and strict in
 * structure: every field has one JSON type, decoded sizes are capped, and each error names the
 * field by its path ("report.SnpReport", "runtimeData.dataType").
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "cleanup.h"
#include "json_util.h"
#include "ossl.h"
#include "skr.h"

/*
 * Caps on what the parser accepts. A report is 1184 bytes and a PEM chain about 6 KiB, so
 * 64 KiB leaves room for longer chains while bounding what one request can make us allocate;
 * the endorsement (a COSE_Sign1 with its x5chain) is typically ~10 KiB. The service itself
 * checks the report's exact size so it can say "truncated report" rather than "bad request".
 */
#define MAA_REQUEST_MAX_BODY (2u * 1024 * 1024)
#define MAA_REQUEST_MAX_INNER (512u * 1024)
#define MAA_REQUEST_MAX_REPORT (64u * 1024)
#define MAA_REQUEST_MAX_CHAIN (64u * 1024)
#define MAA_REQUEST_MAX_ENDORSEMENTS (256u * 1024)
#define MAA_REQUEST_MAX_DATA (256u * 1024)
#define MAA_REQUEST_MAX_NONCE 256

/* ---------------------------------------------------------------------------------------------
 * Build
 * ------------------------------------------------------------------------------------------- */

static int add_string(json_object *obj, const char *key, const char *value)
{
	json_object *s = json_object_new_string(value);

	if (!s)
		return -ENOMEM;
	if (json_object_object_add(obj, key, s) < 0) {
		json_object_put(s);
		return -ENOMEM;
	}
	return 0;
}

/* Add @key = b64url-with-padding(@data), the anchor's base64.URLEncoding. */
static int add_b64url(json_object *obj, const char *key, const void *data, size_t len)
{
	_cleanup_free_ char *enc = NULL;
	int r = b64_encode(data, len, B64_URL, &enc);

	if (r < 0)
		return r;
	return add_string(obj, key, enc);
}

static int add_object(json_object *obj, const char *key, json_object **out)
{
	json_object *o = json_object_new_object();

	if (!o)
		return -ENOMEM;
	if (json_object_object_add(obj, key, o) < 0) {
		json_object_put(o);
		return -ENOMEM;
	}
	*out = o;
	return 0;
}

/* {"Uvm": [b64url(COSE_Sign1)]} from the security context's (standard base64) reference info. */
static int build_endorsements(const char *reference_info_b64, char **out, struct skr_error *err)
{
	_cleanup_json_ json_object *root = NULL;
	_cleanup_free_ uint8_t *cose = NULL;
	_cleanup_free_ char *cose_url = NULL;
	json_object *arr, *s;
	size_t cose_len;
	int r;

	r = b64_decode(reference_info_b64, strlen(reference_info_b64), B64_ACCEPT_ANY, &cose,
	               &cose_len);
	if (r == -ENOMEM)
		return skr_error_set(err, r, "MAA request: out of memory");
	if (r < 0 || cose_len == 0)
		return skr_error_set(err, -EINVAL,
		                     "MAA request: the UVM reference info (reference-info-base64) "
		                     "is not base64");
	r = b64_encode(cose, cose_len, B64_URL, &cose_url);
	if (r < 0)
		return skr_error_set(err, r, "MAA request: out of memory");

	root = json_object_new_object();
	arr = json_object_new_array();
	if (!root || !arr) {
		json_object_put(arr);
		return skr_error_set(err, -ENOMEM, "MAA request: out of memory");
	}
	if (json_object_object_add(root, "Uvm", arr) < 0) {
		json_object_put(arr);
		return skr_error_set(err, -ENOMEM, "MAA request: out of memory");
	}
	s = json_object_new_string(cose_url);
	if (!s || json_object_array_add(arr, s) < 0) {
		json_object_put(s);
		return skr_error_set(err, -ENOMEM, "MAA request: out of memory");
	}
	*out = strdup(json_compact(root));
	if (!*out)
		return skr_error_set(err, -ENOMEM, "MAA request: out of memory");
	return 0;
}

int maa_request_build(const uint8_t *report, size_t report_len, const char *cert_chain_pem,
                      const char *uvm_reference_info_b64, const uint8_t *runtime,
                      size_t runtime_len, uint64_t nonce, char **out, struct skr_error *err)
{
	_cleanup_json_ json_object *inner = NULL, *body = NULL;
	_cleanup_free_ char *endorsements = NULL;
	json_object *rt, *it, *n;
	const char *text;
	int r;

	if (!report || report_len == 0)
		return skr_error_set(err, -EINVAL, "MAA request: no SNP report");
	if (!cert_chain_pem || !*cert_chain_pem)
		return skr_error_set(err, -EINVAL,
		                     "MAA request: no VCEK certificate chain (MAA requires one)");
	if (!runtime && runtime_len > 0)
		return skr_error_set(err, -EINVAL, "MAA request: runtime data pointer is NULL");
	/* See maa_request_parse(): json-c saturates larger numbers to this value. */
	if (nonce == UINT64_MAX)
		return skr_error_set(err, -EINVAL, "MAA request: nonce 2^64-1 is reserved");

	if (uvm_reference_info_b64 && *uvm_reference_info_b64) {
		r = build_endorsements(uvm_reference_info_b64, &endorsements, err);
		if (r < 0)
			return r;
	}

	/* maaReport, in the anchor's field order: SnpReport, VcekCertChain, Endorsements. */
	inner = json_object_new_object();
	if (!inner)
		goto oom;
	if (add_b64url(inner, "SnpReport", report, report_len) < 0 ||
	    add_b64url(inner, "VcekCertChain", cert_chain_pem, strlen(cert_chain_pem)) < 0)
		goto oom;
	if (endorsements &&
	    add_b64url(inner, "Endorsements", endorsements, strlen(endorsements)) < 0)
		goto oom;

	body = json_object_new_object();
	if (!body)
		goto oom;
	text = json_compact(inner);
	if (!text || add_b64url(body, "report", text, strlen(text)) < 0)
		goto oom;
	if (add_object(body, "runtimeData", &rt) < 0 ||
	    add_b64url(rt, "data", runtime ? (const void *)runtime : "", runtime_len) < 0 ||
	    add_string(rt, "dataType", "JSON") < 0)
		goto oom;
	/* The anchor cannot send its rego policy as JSON init-time data, so it sends it empty. */
	if (add_object(body, "initTimeData", &it) < 0 || add_string(it, "data", "") < 0 ||
	    add_string(it, "dataType", "") < 0)
		goto oom;
	n = json_object_new_uint64(nonce);
	if (!n)
		goto oom;
	if (json_object_object_add(body, "nonce", n) < 0) {
		json_object_put(n);
		goto oom;
	}

	text = json_compact(body);
	if (!text)
		goto oom;
	*out = strdup(text);
	if (!*out)
		goto oom;
	return 0;
oom:
	return skr_error_set(err, -ENOMEM, "MAA request: out of memory");
}

/* ---------------------------------------------------------------------------------------------
 * Parse
 * ------------------------------------------------------------------------------------------- */

void maa_request_clear(struct maa_request *r)
{
	if (!r)
		return;
	free(r->report);
	free(r->vcek_cert_chain);
	free(r->endorsements);
	free(r->runtime_data);
	free(r->init_data);
	free(r->nonce);
	memset(r, 0, sizeof(*r));
}

/*
 * The string field @key of @obj ("@path" in messages). Absent or null → *out NULL (an error
 * when @required). Strings with an embedded NUL are refused: every string here is either
 * base64 or an enumeration, and a NUL would make C and JSON disagree on the value.
 */
static int get_string(json_object *obj, const char *key, const char *path, bool required,
                      const char **out, size_t *out_len, struct skr_error *err)
{
	json_object *v = NULL;
	const char *s;
	size_t len;

	*out = NULL;
	*out_len = 0;
	if (!json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null)) {
		if (required)
			return skr_error_set(err, -EINVAL, "MAA request: %s is missing", path);
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return skr_error_set(err, -EINVAL, "MAA request: %s is not a string (%s)", path,
		                     json_type_to_name(json_object_get_type(v)));
	s = json_object_get_string(v);
	len = (size_t)json_object_get_string_len(v);
	if (strlen(s) != len)
		return skr_error_set(err, -EINVAL, "MAA request: %s contains a NUL character",
		                     path);
	*out = s;
	*out_len = len;
	return 0;
}

/*
 * Decode a base64 field of any spelling, refusing more than @max decoded bytes before
 * allocating. *out has a NUL after the data (b64_decode's guarantee).
 */
static int decode_field(const char *s, size_t len, const char *path, size_t max, uint8_t **out,
                        size_t *out_len, struct skr_error *err)
{
	int r;

	if (len / 4 * 3 > max + 3)
		return skr_error_set(err, -EFBIG,
		                     "MAA request: %s is too large (more than %zu bytes decoded)",
		                     path, max);
	r = b64_decode(s, len, B64_ACCEPT_ANY, out, out_len);
	if (r == -ENOMEM)
		return skr_error_set(err, r, "MAA request: out of memory decoding %s", path);
	if (r < 0)
		return skr_error_set(err, -EINVAL, "MAA request: %s is not base64url", path);
	if (*out_len > max) {
		free(*out);
		*out = NULL;
		return skr_error_set(err, -EFBIG,
		                     "MAA request: %s is too large (more than %zu bytes decoded)",
		                     path, max);
	}
	return 0;
}

static int get_b64_field(json_object *obj, const char *key, const char *path, bool required,
                         size_t max, uint8_t **out, size_t *out_len, struct skr_error *err)
{
	const char *s;
	size_t len;
	int r;

	*out = NULL;
	*out_len = 0;
	r = get_string(obj, key, path, required, &s, &len, err);
	if (r < 0 || !s)
		return r;
	return decode_field(s, len, path, max, out, out_len, err);
}

static int parse_inner_report(const uint8_t *json, size_t len, struct maa_request *out,
                              struct skr_error *err)
{
	_cleanup_json_ json_object *inner = NULL, *endorsements = NULL;
	_cleanup_free_ uint8_t *chain = NULL, *endo = NULL;
	size_t chain_len, endo_len;
	struct skr_error jerr = {0};
	int r;

	r = json_parse((const char *)json, len, "report", &inner, &jerr);
	if (r < 0)
		return skr_error_set(err, r, "MAA request: report (decoded) is not JSON: %s",
		                     jerr.msg);
	if (!json_object_is_type(inner, json_type_object))
		return skr_error_set(err, -EINVAL,
		                     "MAA request: report (decoded) is not a JSON object");

	r = get_b64_field(inner, "SnpReport", "report.SnpReport", true, MAA_REQUEST_MAX_REPORT,
	                  &out->report, &out->report_len, err);
	if (r < 0)
		return r;
	if (out->report_len == 0)
		return skr_error_set(err, -EINVAL, "MAA request: report.SnpReport is empty");

	/* MAA refuses SNP evidence without the chain that endorses the signing key. */
	r = get_b64_field(inner, "VcekCertChain", "report.VcekCertChain", true,
	                  MAA_REQUEST_MAX_CHAIN, &chain, &chain_len, err);
	if (r < 0)
		return r;
	if (chain_len == 0)
		return skr_error_set(err, -EINVAL, "MAA request: report.VcekCertChain is empty");
	if (memchr(chain, '\0', chain_len))
		return skr_error_set(
		        err, -EINVAL,
		        "MAA request: report.VcekCertChain is not PEM text (NUL byte)");
	out->vcek_cert_chain = (char *)TAKE_PTR(chain);
	out->vcek_cert_chain_len = chain_len;

	r = get_b64_field(inner, "Endorsements", "report.Endorsements", false,
	                  MAA_REQUEST_MAX_ENDORSEMENTS, &endo, &endo_len, err);
	if (r < 0)
		return r;
	if (endo) {
		r = json_parse((const char *)endo, endo_len, "report.Endorsements", &endorsements,
		               &jerr);
		if (r < 0 || !json_object_is_type(endorsements, json_type_object))
			return skr_error_set(err, -EINVAL,
			                     "MAA request: report.Endorsements (decoded) is not a "
			                     "JSON object");
		out->endorsements = (char *)TAKE_PTR(endo);
	}
	return 0;
}

/*
 * runtimeData / initTimeData: {"data": b64url, "dataType": "JSON" | "Binary"}. The anchor sends
 * initTimeData as {"data": "", "dataType": ""}, so an empty type is allowed there with no data.
 */
static int parse_data(json_object *body, const char *key, bool allow_empty_type, uint8_t **out,
                      size_t *out_len, char type_out[8], struct skr_error *err)
{
	char path_data[32], path_type[32];
	json_object *obj = NULL;
	const char *type;
	size_t type_len;
	int r;

	if (!json_object_object_get_ex(body, key, &obj) || json_object_is_type(obj, json_type_null))
		return 0;
	if (!json_object_is_type(obj, json_type_object))
		return skr_error_set(err, -EINVAL, "MAA request: %s is not a JSON object", key);

	snprintf(path_data, sizeof(path_data), "%s.data", key);
	snprintf(path_type, sizeof(path_type), "%s.dataType", key);
	r = get_b64_field(obj, "data", path_data, true, MAA_REQUEST_MAX_DATA, out, out_len, err);
	if (r < 0)
		return r;
	r = get_string(obj, "dataType", path_type, true, &type, &type_len, err);
	if (r < 0)
		return r;
	if (strcmp(type, "JSON") != 0 && strcmp(type, "Binary") != 0 &&
	    !(allow_empty_type && type_len == 0))
		return skr_error_set(
		        err, -EINVAL,
		        "MAA request: %s must be \"JSON\" or \"Binary\", not \"%.32s\"", path_type,
		        type);
	if (type_len == 0 && *out_len > 0)
		return skr_error_set(err, -EINVAL, "MAA request: %s is empty but %s is not",
		                     path_type, path_data);
	/*
	 * MAA places JSON runtime data under x-ms-runtime: it must be a JSON document, and
	 * nothing at all is not one (MAA refuses it too).
	 */
	if (strcmp(type, "JSON") == 0 && *out_len == 0)
		return skr_error_set(err, -EINVAL,
		                     "MAA request: %s is empty although %s is \"JSON\"", path_data,
		                     path_type);
	if (strcmp(type, "JSON") == 0) {
		_cleanup_json_ json_object *doc = NULL;
		struct skr_error jerr = {0};

		if (json_parse((const char *)*out, *out_len, path_data, &doc, &jerr) < 0)
			return skr_error_set(err, -EINVAL,
			                     "MAA request: %s is not JSON although %s is \"JSON\"",
			                     path_data, path_type);
	}
	memcpy(type_out, type, type_len + 1);
	return 0;
}

static int parse_nonce(json_object *body, char **out, struct skr_error *err)
{
	json_object *v = NULL;
	char buf[32];

	if (!json_object_object_get_ex(body, "nonce", &v) || json_object_is_type(v, json_type_null))
		return 0;

	switch (json_object_get_type(v)) {
	case json_type_string: {
		const char *s;
		size_t len;
		int r = get_string(body, "nonce", "nonce", true, &s, &len, err);

		if (r < 0)
			return r;
		if (len > MAA_REQUEST_MAX_NONCE)
			return skr_error_set(err, -EFBIG,
			                     "MAA request: nonce is longer than %u characters",
			                     MAA_REQUEST_MAX_NONCE);
		*out = strdup(s);
		break;
	}
	case json_type_int: {
		uint64_t u;

		if (json_object_get_int64(v) < 0)
			return skr_error_set(err, -EINVAL, "MAA request: nonce is negative");
		u = json_object_get_uint64(v);
		/*
		 * json-c saturates integers beyond 64 bits to UINT64_MAX instead of failing, so
		 * that value cannot be told from an overflow: refuse it rather than change the
		 * nonce the client sent.
		 */
		if (u == UINT64_MAX)
			return skr_error_set(err, -ERANGE,
			                     "MAA request: nonce is out of range (at most 2^64-2; "
			                     "send larger nonces as a string)");
		snprintf(buf, sizeof(buf), "%" PRIu64, u);
		*out = strdup(buf);
		break;
	}
	case json_type_double:
		return skr_error_set(err, -EINVAL,
		                     "MAA request: nonce must be an integer or a string, not a "
		                     "fraction or exponent");
	default:
		return skr_error_set(err, -EINVAL,
		                     "MAA request: nonce must be an integer or a string, not %s",
		                     json_type_to_name(json_object_get_type(v)));
	}
	if (!*out)
		return skr_error_set(err, -ENOMEM, "MAA request: out of memory");
	return 0;
}

int maa_request_parse(const char *body, size_t len, struct maa_request *out, struct skr_error *err)
{
	_cleanup_json_ json_object *root = NULL;
	_cleanup_free_ uint8_t *inner = NULL;
	struct maa_request req = {0};
	struct skr_error jerr = {0};
	json_object *draft = NULL;
	size_t inner_len;
	int r;

	memset(out, 0, sizeof(*out));
	if (!body)
		return skr_error_set(err, -EINVAL, "MAA request: no body");
	if (len > MAA_REQUEST_MAX_BODY)
		return skr_error_set(err, -EFBIG, "MAA request: body larger than %u bytes",
		                     MAA_REQUEST_MAX_BODY);
	r = json_parse(body, len, "body", &root, &jerr);
	if (r < 0)
		return skr_error_set(err, r, "MAA request: %s", jerr.msg);
	if (!json_object_is_type(root, json_type_object))
		return skr_error_set(err, -EINVAL, "MAA request: body is not a JSON object");

	{
		const char *s;
		size_t slen;

		r = get_string(root, "report", "report", true, &s, &slen, err);
		if (r < 0)
			return r;
		r = decode_field(s, slen, "report", MAA_REQUEST_MAX_INNER, &inner, &inner_len, err);
		if (r < 0)
			return r;
	}
	r = parse_inner_report(inner, inner_len, &req, err);
	if (r < 0)
		goto fail;
	r = parse_data(root, "runtimeData", false, &req.runtime_data, &req.runtime_data_len,
	               req.runtime_data_type, err);
	if (r < 0)
		goto fail;
	r = parse_data(root, "initTimeData", true, &req.init_data, &req.init_data_len,
	               req.init_data_type, err);
	if (r < 0)
		goto fail;
	r = parse_nonce(root, &req.nonce, err);
	if (r < 0)
		goto fail;
	/* Known but unused here: a draft policy is only type-checked. */
	if (json_object_object_get_ex(root, "draftPolicyForAttestation", &draft) &&
	    !json_object_is_type(draft, json_type_null) &&
	    !json_object_is_type(draft, json_type_string)) {
		r = skr_error_set(err, -EINVAL,
		                  "MAA request: draftPolicyForAttestation is not a string");
		goto fail;
	}
	*out = req;
	return 0;
fail:
	maa_request_clear(&req);
	return r;
}
