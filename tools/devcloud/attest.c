/* SPDX-License-Identifier: MIT */
/*
 * POST /attest/SevSnpVm?api-version=…: MAA's SEV-SNP attestation (protocols.md §4.1).
 *
 * Status codes: 200 {"token"}; 400 for any bad input (malformed body, wrong report size,
 * failed verification, REPORT_DATA mismatch, Host not a certificate name, missing
 * api-version); 413 for a body over --max-body (MAA answers such bodies with 400 or 413
 * depending on the front end; devcloud picks 413 so the cause is unambiguous), decided from
 * Content-Length without buffering the body (see server.c for when it is drained).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "devcloud.h"
#include "ossl.h"
#include "secret.h"

static int bad_request(struct devcloud_response *resp, const struct skr_error *err)
{
	return devcloud_response_error(resp, 400, "InvalidParameter", "%s", skr_error_message(err));
}

int devcloud_attest(struct devcloud *dc, const char *body, size_t len, size_t content_length,
                    const char *host, struct devcloud_response *resp)
{
	_cleanup_free_ char *issuer = NULL;
	_cleanup_json_ json_object *claims = NULL;
	struct maa_request req = {0};
	struct devcloud_evidence ev = {0};
	struct skr_error err = {0};
	char *jwt = NULL;
	int r;

	if (content_length < len)
		content_length = len;
	if (content_length > dc->max_body)
		return devcloud_response_error(resp, 413, "PayloadTooLarge",
		                               "request body is %zu bytes, more than the limit of "
		                               "%zu bytes (devcloud serve --max-body)",
		                               content_length, dc->max_body);
	if (devcloud_issuer_from_host(&dc->settings, host, &issuer, &err) < 0)
		return bad_request(resp, &err);

	r = maa_request_parse(body, len, &req, &err);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return bad_request(resp, &err);

	r = devcloud_evidence_verify(dc->trust, req.report, req.report_len, req.vcek_cert_chain,
	                             req.vcek_cert_chain_len, req.runtime_data_type[0] != '\0',
	                             req.runtime_data, req.runtime_data_len,
	                             strcmp(req.runtime_data_type, "JSON") == 0, &ev, &err);
	if (r < 0) {
		r = r == -ENOMEM ? r : bad_request(resp, &err);
		goto out;
	}

	r = devcloud_claims_build(&ev, dc->settings.compliance_status, dc->policy_hash, req.nonce,
	                          &claims);
	if (r < 0)
		goto out;
	r = devcloud_token_sign(dc, issuer, claims, time(NULL), &jwt, &err);
	if (r < 0) {
		r = devcloud_response_error(resp, 500, "InternalServerError", "%s",
		                            skr_error_message(&err));
		goto out;
	}
	/*
	 * The body is composed here rather than by json-c so that no unerased copy of the token
	 * stays in json-c's buffers; a JWS is base64url and dots, which JSON needs no escaping for.
	 */
	{
		size_t body_len = strlen("{\"token\":\"\"}") + strlen(jwt);
		char *text = malloc(body_len + 1);

		if (!text) {
			r = -ENOMEM;
			goto out;
		}
		snprintf(text, body_len + 1, "{\"token\":\"%s\"}", jwt);
		devcloud_response_clear(resp);
		resp->status = 200;
		resp->content_type = "application/json; charset=utf-8";
		resp->body = text;
		resp->body_len = body_len;
		resp->secret_body = true;
		r = 0;
	}
out:
	if (jwt)
		secure_free(jwt, strlen(jwt));
	devcloud_evidence_clear(&ev);
	maa_request_clear(&req);
	return r;
}

int devcloud_handle_attest(struct devcloud *dc, const struct devcloud_request *req,
                           struct devcloud_response *resp)
{
	bool present;
	const char *version = devcloud_request_query(req, "api-version", &present);

	if (!version || !*version)
		return devcloud_response_error(resp, 400, "MissingApiVersionParameter",
		                               "The api-version query parameter (?api-version=) is "
		                               "required for all requests (e.g. "
		                               "api-version=2020-10-01)");
	return devcloud_attest(dc, req->body, req->body_len, req->content_length,
	                       devcloud_request_header(req, "Host"), resp);
}
