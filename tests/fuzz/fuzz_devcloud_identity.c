/* SPDX-License-Identifier: MIT */
/*
 * devcloud's identity inputs from the network: the Entra token endpoint's form body (URL
 * decoding, fields, the client assertion JWS) and the key vault's Authorization header (the
 * bearer JWS). The first byte picks the target; the rest is the input. A fixed devcloud state is
 * created once in LLVMFuzzerInitialize.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "devcloud.h"
#include "fuzz_devcloud_state.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct devcloud *dc;
static char tmpdir[] = "/tmp/fuzz_devcloud_identity.XXXXXX";
static char path[128];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	dc = fuzz_devcloud_open(tmpdir);
	snprintf(path, sizeof(path), "/%s/oauth2/v2.0/token", dc->identity.tenant_id);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;

	if (size < 1)
		return 0;
	text = malloc(size);
	if (!text)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	if (data[0] & 1) {
		struct skr_error err = {0};

		/* NUL-terminated like a header value; only the prefix before a NUL counts. */
		if (devcloud_access_token_check(dc, text, time(NULL), &err) == 0)
			abort(); /* a forged bearer token was accepted */
	} else {
		struct devcloud_kv headers[] = {
		        {"Host", "localhost:8443"},
		        {"Content-Type", "application/x-www-form-urlencoded"},
		};
		struct devcloud_request req = {
		        .method = "POST",
		        .path = path,
		        .headers = headers,
		        .n_headers = 2,
		        .body = text,
		        .body_len = size - 1,
		        .content_length = size - 1,
		};
		struct devcloud_response resp = {0};

		if (devcloud_dispatch(dc, &req, &resp) == 0 && resp.status == 200)
			abort(); /* a token for an assertion devcloud never signed */
		devcloud_response_clear(&resp);
	}
	free(text);
	return 0;
}
