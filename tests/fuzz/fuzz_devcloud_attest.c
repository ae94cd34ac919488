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
#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct devcloud *dc;
static char tmpdir[] = "/tmp/fuzz_devcloud_attest.XXXXXX";

static void cleanup(void)
{
	char cmd[128];

	devcloud_free(dc);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct devcloud_init_options io;
	struct devcloud_serve_options so;
	struct skr_error err = {0};
	char state[128];

	(void)argc;
	(void)argv;
	log_set_level(LOG_LEVEL_ERROR);
	if (!mkdtemp(tmpdir))
		abort();
	snprintf(state, sizeof(state), "%s/state", tmpdir);
	devcloud_init_options_default(&io);
	io.state_dir = state;
	devcloud_serve_options_default(&so);
	so.state_dir = state;
	if (devcloud_state_init(&io, NULL, &err) < 0 || devcloud_open(&so, &dc, &err) < 0) {
		fprintf(stderr, "devcloud state: %s\n", skr_error_message(&err));
		abort();
	}
	atexit(cleanup);
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
