/* SPDX-License-Identifier: MIT */
/*
 * Certificate chains from arbitrary PEM text (THIM JSON, security-context files, KDS and cache
 * answers are all untrusted): snp_cert_chain_from_pem, leaf classification and AMD extension
 * parsing, the PEM round trip, and the trust store's loader on the same text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "skr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct snp_cert_chain *chain = NULL, *again = NULL;
	struct snp_trust_store *ts = NULL;
	struct snp_vcek_info info;
	struct skr_error err = {0};
	char *pem = NULL, *pem2 = NULL;

	if (snp_cert_chain_from_pem(text, size, &chain, &err) < 0) {
		if (err.code == 0 || err.msg[0] == '\0' || chain)
			abort();
	} else {
		if (snp_cert_chain_has_leaf(chain)) {
			skr_error_clear(&err);
			if (snp_cert_chain_leaf_info(chain, &info, &err) == 0) {
				if (info.hwid_len != 0 && info.hwid_len != 8 && info.hwid_len != 64)
					abort();
				if (memchr(info.product_name, '\0', sizeof(info.product_name)) ==
				    NULL)
					abort();
			} else if (err.msg[0] == '\0') {
				abort();
			}
		}
		/* Leaf, ASK, ARK out; the same chain back in. */
		if (snp_cert_chain_to_pem(chain, &pem, &err) < 0)
			abort();
		if (snp_cert_chain_from_pem(pem, strlen(pem), &again, &err) < 0)
			abort();
		if (snp_cert_chain_to_pem(again, &pem2, &err) < 0 || strcmp(pem, pem2) != 0)
			abort();
		free(pem);
		free(pem2);
		snp_cert_chain_free(again);
		snp_cert_chain_free(chain);
	}

	if (snp_trust_store_new(&ts, &err) < 0)
		abort();
	(void)snp_trust_store_add_pem(ts, text, size, &err);
	snp_trust_store_free(ts);
	return 0;
}
