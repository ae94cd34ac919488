/* SPDX-License-Identifier: MIT */
/* libFuzzer target: maa_request_parse(), the local MAA service's view of untrusted bodies. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "skr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct maa_request req;
	struct skr_error err = {0};

	if (maa_request_parse((const char *)data, size, &req, &err) == 0) {
		/* What a successful parse hands out must be readable to its stated length. */
		volatile uint8_t sink = 0;

		for (size_t i = 0; i < req.report_len; i++)
			sink ^= req.report[i];
		sink ^= (uint8_t)strlen(req.vcek_cert_chain);
		if (req.endorsements)
			sink ^= (uint8_t)strlen(req.endorsements);
		for (size_t i = 0; i < req.runtime_data_len; i++)
			sink ^= req.runtime_data[i];
		if (req.nonce)
			sink ^= (uint8_t)strlen(req.nonce);
		(void)sink;
		maa_request_clear(&req);
	} else if (err.msg[0] == '\0') {
		__builtin_trap(); /* every refusal must say why */
	}
	return 0;
}
