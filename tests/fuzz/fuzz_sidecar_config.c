/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the sidecar's configuration documents (sidecar/config.c). The first byte
 * picks how the rest is fed: bit 0 set → the rest is JSON, base64-encoded here first (so that
 * mutations explore the JSON handling, not only the base64 check); clear → the rest is the
 * environment value itself. Each input goes to both parse functions on a fresh configuration,
 * then to validate, print (to /dev/null), the attester mapping and the allowlists.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "log.h"
#include "../../sidecar/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *devnull;

static void quiet(enum log_level level, const char *msg, void *userdata)
{
	(void)level;
	(void)msg;
	(void)userdata;
}

static void exercise(const struct sidecar_config *c)
{
	struct skr_attest_config a;
	struct skr_error err = {0};

	(void)sidecar_config_validate(c, &err);
	if (sidecar_config_print(c, devnull) != 0)
		__builtin_trap();
	sidecar_config_attest(c, &a);
	if (a.source.kind != c->attestation_source)
		__builtin_trap();
	/* The configuration's own endpoints are always allowed; garbage never is. */
	for (size_t i = 0; i < c->n_filesystems; i++) {
		const struct sidecar_filesystem *fs = &c->filesystems[i];

		if (fs->maa_endpoint && !sidecar_config_maa_allowed(c, fs->maa_endpoint))
			__builtin_trap();
		if (fs->akv_endpoint && !sidecar_config_akv_allowed(c, fs->akv_endpoint))
			__builtin_trap();
	}
	for (size_t i = 0; i < c->n_allowed_maa; i++)
		if (!sidecar_config_maa_allowed(c, c->allowed_maa[i]))
			__builtin_trap();
	for (size_t i = 0; i < c->n_allowed_akv; i++)
		if (!sidecar_config_akv_allowed(c, c->allowed_akv[i]))
			__builtin_trap();
	if (sidecar_config_maa_allowed(c, "") || sidecar_config_akv_allowed(c, "http://x"))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = NULL;
	size_t len;

	if (!devnull) {
		devnull = fopen("/dev/null", "w");
		if (!devnull)
			abort();
		log_set_sink(quiet, NULL);
	}
	if (size < 1)
		return 0;
	if (data[0] & 1) {
		if (b64_encode(data + 1, size - 1, (data[0] & 2) ? B64_URL_NOPAD : B64_STD, &text) <
		    0)
			return 0;
		len = strlen(text);
	} else {
		text = malloc(size);
		if (!text)
			return 0;
		memcpy(text, data + 1, size - 1);
		len = size - 1;
	}

	for (int doc = 0; doc < 2; doc++) {
		struct sidecar_config c = {0};
		struct skr_error err = {0};
		int r = doc == 0 ? sidecar_config_parse_skr_args(text, len, &c, &err)
		                 : sidecar_config_parse_encfs_args(text, len, &c, &err);

		/* A refusal always says why, on one line. */
		if (r < 0 && (!err.msg[0] || strchr(err.msg, '\n')))
			__builtin_trap();
		if (r != 0 && r != -EINVAL && r != -ENOMEM)
			__builtin_trap();
		exercise(&c);
		sidecar_config_clear(&c);
	}
	free(text);
	return 0;
}
