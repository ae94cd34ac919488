/* SPDX-License-Identifier: MIT */
/*
 * devcloud's attest operation end to end on untrusted bodies: request parsing, report size and
 * parsing, certificate chain parsing, verification, binding and token issuance. A fixed
 * devcloud state (CA, keys, virtual platform) is created once in LLVMFuzzerInitialize.
 * Seeds (corpus/devcloud_attest) are complete requests of another virtual platform, so the
 * fuzzer starts at the verification steps rather than at JSON syntax.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devcloud.h"
#include "fuzz_devcloud_state.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct devcloud *dc;
static char tmpdir[] = "/tmp/fuzz_devcloud_attest.XXXXXX";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	dc = fuzz_devcloud_open(tmpdir);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct devcloud_response resp = {0};

	if (devcloud_attest(dc, (const char *)data, size, size, "localhost:443", &resp) < 0)
		return 0; /* out of memory */
	if (resp.status != 200 && resp.status != 400 && resp.status != 413)
		abort();
	if (!resp.body || resp.body_len == 0)
		abort();
	devcloud_response_clear(&resp);
	return 0;
}
