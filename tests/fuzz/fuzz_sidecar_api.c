/* SPDX-License-Identifier: MIT */
/*
 * The SKR API's request parsing (sidecar_api_handle) and the log sink's redaction safety net on
 * arbitrary bytes. The first byte picks the route; the rest is the body. The configuration allows
 * no endpoint, so a body that parses is refused (403) before anything would reach the attester
 * (there is none here): everything up to that point is exercised. The same bytes then go through
 * sidecar_log_redact() with a roomy and a tight output buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "logsink.h"
#include "status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct {
	const char *method, *path;
} routes[] = {
        {"POST", "/attest/maa"}, {"POST", "/key/release"}, {"GET", "/status"},
        {"POST", "/status"},     {"GET", "/attest/raw"},   {"POST", "/nope"},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sidecar_config cfg;
	static struct sidecar_status *status;
	struct sidecar_api api = {.cfg = &cfg};
	struct sidecar_api_request req = {0};
	struct sidecar_api_response resp;
	char *text, *out;
	size_t out_size;

	if (!status && sidecar_status_new(NULL, 0, &status, NULL) < 0)
		abort();
	api.status = status;
	if (size < 1)
		return 0;
	text = malloc(size);
	if (!text)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	req.method = routes[data[0] % (sizeof(routes) / sizeof(routes[0]))].method;
	req.path = routes[data[0] % (sizeof(routes) / sizeof(routes[0]))].path;
	req.body = text;
	req.body_len = size - 1;
	req.content_length = size - 1;
	if (sidecar_api_handle(&api, &req, &resp) == 0) {
		/* one JSON body, never an upstream success */
		if (!resp.body || resp.status == 200) {
			if (strcmp(req.path, "/status") != 0)
				abort();
		}
		sidecar_api_response_clear(&resp);
	}

	/* redaction: stays inside the buffer and NUL-terminates, however tight */
	out_size = strlen(text) * 4 + 64;
	out = malloc(out_size);
	if (out) {
		sidecar_log_redact(text, out, out_size);
		if (strlen(out) >= out_size)
			abort();
		sidecar_log_redact(text, out, 7);
		if (strlen(out) >= 7)
			abort();
		free(out);
	}
	free(text);
	return 0;
}
