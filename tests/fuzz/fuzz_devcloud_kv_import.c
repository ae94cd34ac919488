/* SPDX-License-Identifier: MIT */
/*
 * The key vault's import body parser (PUT /keys/{name}): JSON, the JWK of every key type with
 * its OpenSSL checks, key_ops, attributes, release_policy (base64 and the policy grammar) and
 * tags. Seeds (corpus/devcloud_kv_import) are valid oct, RSA and EC imports with policies.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devcloud.h"
#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_LEVEL_ERROR);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct devcloud_kv_import imp;
	struct skr_error err = {0};

	if (devcloud_kv_import_parse((const char *)data, size, &imp, &err) == 0) {
		/* What a successful parse promises the store. */
		if (!imp.material || !imp.public_jwk || imp.n_key_ops == 0 ||
		    (imp.exportable && !imp.has_policy))
			abort();
		devcloud_kv_import_clear(&imp);
	} else if (!err.msg[0]) {
		abort(); /* every refusal says why */
	}
	return 0;
}
