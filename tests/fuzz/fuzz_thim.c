/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: THIM certification JSON (snp_thim_parse), the document a THIM endpoint or
 * the ACI security context hands us, followed by what the fetcher does with an accepted one
 * (the VCEK and chain PEMs into snp_cert_chain_from_pem).
 */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct skr_error err = {0};
	struct snp_cert_chain *chain = NULL;
	struct snp_thim t;
	char again[17];

	if (snp_thim_parse((const char *)data, size, &t, &err) < 0) {
		/* A refusal always says why, and leaves nothing allocated. */
		if (!err.msg[0] || t.vcek_pem || t.chain_pem)
			__builtin_trap();
		return 0;
	}
	/* Accepted: tcbm is exactly the 16 hex digits it was parsed from. */
	if (!t.vcek_pem || !t.chain_pem || strlen(t.tcbm_str) != 16 || t.cache_control < 0)
		__builtin_trap();
	for (size_t i = 0; i < 16; i++)
		if (!isxdigit((unsigned char)t.tcbm_str[i]))
			__builtin_trap();
	snprintf(again, sizeof(again), "%016llx", (unsigned long long)t.tcbm);
	if (strcasecmp(again, t.tcbm_str) != 0)
		__builtin_trap();

	skr_error_clear(&err);
	if (snp_cert_chain_from_pem(t.vcek_pem, strlen(t.vcek_pem), &chain, &err) == 0)
		(void)snp_cert_chain_add_pem(chain, t.chain_pem, strlen(t.chain_pem), &err);
	snp_cert_chain_free(chain);
	snp_thim_clear(&t);
	return 0;
}
