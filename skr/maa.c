/* SPDX-License-Identifier: MIT */
/*
 * The MAA attest call (protocols.md §4.1): POST the evidence, get the token.
 */
#include "maa.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "cleanup.h"
#include "endpoint.h"
#include "http.h"
#include "json_util.h"
#include "jwt.h"
#include "log.h"
#include "ossl.h"
#include "secret.h"

/* The anchor's TEE path and API version; MAA keeps serving older versions. */
#define MAA_ATTEST_PATH "/attest/SevSnpVm?api-version=2020-10-01"
/* Tokens are ~10–20 KiB; the cap bounds what a misbehaving endpoint can make us hold. */
#define MAA_MAX_RESPONSE (1024u * 1024)

DEFINE_CLEANUP_FUNC(CURLU *, curl_url_cleanup)

int maa_base_url(const char *endpoint, char **out, struct skr_error *err)
{
	_cleanup_(curl_url_cleanupp) CURLU *u = NULL;
	char *host = NULL, *port = NULL, *path = NULL;
	bool has_path;
	int r;

	*out = NULL;
	r = endpoint_parse("MAA", endpoint, NULL, &u, err);
	if (r < 0)
		return r;
	static const CURLUPart refused[] = {CURLUPART_USER, CURLUPART_PASSWORD, CURLUPART_QUERY,
	                                    CURLUPART_FRAGMENT};
	for (size_t i = 0; i < ELEMENTSOF(refused); i++)
		if (endpoint_has_part(u, refused[i]))
			return skr_error_set(err, -EINVAL,
			                     "MAA endpoint \"%.128s\" may not carry credentials, a "
			                     "query or a fragment",
			                     endpoint);
	/*
	 * MAA serves at the root of its host and issues tokens with iss = https://host: a path
	 * would give an attest URL MAA does not serve and an issuer no token can carry.
	 */
	if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
		path = NULL;
	has_path = path && path[strspn(path, "/")];
	curl_free(path);
	if (has_path)
		return skr_error_set(err, -EINVAL,
		                     "MAA endpoint \"%.128s\" has a path: expected host[:port] or "
		                     "https://host[:port] (MAA serves at its host's root)",
		                     endpoint);
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host || !*host) {
		curl_free(host);
		return skr_error_set(err, -EINVAL, "MAA endpoint \"%.128s\" has no host", endpoint);
	}
	/* The issuer's one spelling: host names are case-insensitive, 443 is the default. */
	for (char *h = host; *h; h++)
		*h = (char)tolower((unsigned char)*h);
	if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_NO_DEFAULT_PORT) != CURLUE_OK)
		port = NULL;
	if (port && strcmp(port, "443") == 0) {
		curl_free(port);
		port = NULL;
	}
	r = asprintf(out, "https://%s%s%s", host, port ? ":" : "", port ? port : "");
	curl_free(host);
	curl_free(port);
	if (r < 0) {
		*out = NULL;
		return skr_error_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

static int status_error(const struct http_response *resp, const char *url, struct skr_error *err)
{
	char code[64], message[256];
	int r;

	if (resp->status == 400 || resp->status == 401 || resp->status == 403)
		r = -EACCES;
	else if (resp->status >= 500)
		r = -EIO;
	else
		r = -EPROTO;
	http_azure_error_fields(resp, code, sizeof(code), message, sizeof(message));
	if (code[0] || message[0])
		return skr_error_set(err, r, "MAA attestation refused: HTTP %ld from %s: %s: %s",
		                     resp->status, url, code[0] ? code : "(no code)", message);
	return skr_error_set(err, r, "MAA attestation failed: HTTP %ld from %s%s", resp->status,
	                     url, r == -EIO ? " (after retries)" : "");
}

int maa_attest(struct http_client *c, const char *endpoint, const char *body, char **token,
               struct skr_error *err)
{
	static const char *const headers[] = {"Content-Type: application/json",
	                                      "Accept: application/json", NULL};
	struct http_response resp = {0};
	_cleanup_json_ json_object *root = NULL;
	_cleanup_free_ char *base = NULL, *url = NULL, *redacted = NULL;
	struct skr_error jerr = {0};
	struct jwt parsed = {0};
	const char *tok;
	int r;

	*token = NULL;
	r = maa_base_url(endpoint, &base, err);
	if (r < 0)
		return r;
	if (asprintf(&url, "%s%s", base, MAA_ATTEST_PATH) < 0) {
		url = NULL;
		return skr_error_set(err, -ENOMEM, "out of memory");
	}
	log_debug("MAA: POST %s (%zu bytes)", url, strlen(body));
	r = http_request(c, "POST", url, headers, body, strlen(body), MAA_MAX_RESPONSE, &resp, err);
	if (r < 0)
		return skr_error_prefix(err, "MAA attest request: ");
	if (resp.status < 200 || resp.status > 207) {
		r = status_error(&resp, base, err);
		goto out;
	}
	r = json_parse(resp.body, resp.body_len, "MAA response", &root, &jerr);
	if (r < 0) {
		r = skr_error_set(err, -EPROTO, "%s", jerr.msg);
		goto out;
	}
	r = json_get_string(root, "token", true, &tok, &jerr);
	if (r < 0 || !*tok) {
		r = skr_error_set(err, -EPROTO, "MAA response from %s has no token%s%s", base,
		                  jerr.msg[0] ? ": " : "", jerr.msg);
		goto out;
	}
	/* Catch a proxy's or a wrong service's answer here, not at the key vault. */
	r = jwt_parse(tok, strlen(tok), &parsed, &jerr);
	jwt_clear(&parsed);
	if (r < 0) {
		r = skr_error_set(err, -EPROTO, "MAA response from %s: token is malformed: %s",
		                  base, jerr.msg);
		goto out;
	}
	*token = strdup(tok);
	if (!*token) {
		r = skr_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	redacted = jwt_redact(tok);
	log_trace("MAA token: %s", redacted ? redacted : "<redacted>");
	log_info("MAA: token received from %s (%zu bytes)", base, strlen(tok));
	/* json-c's copy of the token goes back to the heap with the tree: erase it first. */
	secure_erase((char *)tok, strlen(tok));
	r = 0;
out:
	/* The body holds the token: do not leave it in freed heap memory. */
	if (resp.body)
		secure_erase(resp.body, resp.body_len);
	http_response_clear(&resp);
	return r;
}
