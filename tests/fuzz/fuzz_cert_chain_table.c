/* SPDX-License-Identifier: MIT */
/*
 * snp_cert_chain_from_table on hostile tables: where fuzz_cert_table feeds raw bytes (in which a
 * DER certificate rarely survives), this target builds the table directly from records
 *   kind (1 byte) | length (2 bytes, little-endian) | DER (length bytes)
 * so the fuzzer mutates the certificates themselves (seeds hold AMD's and the virtual platform's
 * real ones): classification, duplicate and conflicting slots, AMD extension parsing (texts must
 * come out printable), PEM round trip, and the chain verification the certificate fetcher runs
 * before caching, against AMD's built-in ARKs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "snp_cert_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct snp_trust_store *amd_roots(void)
{
	static struct snp_trust_store *ts;

	if (!ts &&
	    (snp_trust_store_new(&ts, NULL) < 0 ||
	     snp_trust_store_add_pem(ts, snp_amd_roots_pem, strlen(snp_amd_roots_pem), NULL) < 0))
		abort();
	return ts;
}

static void check_printable(const char *s, size_t size)
{
	size_t n = strnlen(s, size);

	if (n == size)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7E)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct snp_cert_table t = {0};
	struct snp_cert_chain *chain = NULL, *again = NULL;
	struct snp_vcek_info info;
	struct skr_error err = {0};
	char *pem = NULL;
	size_t pos = 0;
	int r;

	while (pos + 3 <= size && t.count < SNP_CERT_TABLE_MAX) {
		struct snp_cert_table_entry *e = &t.entries[t.count];
		size_t len = (size_t)data[pos + 1] | (size_t)data[pos + 2] << 8;

		e->kind = (enum snp_cert_kind)(data[pos] % (SNP_CERT_CRL + 2));
		pos += 3;
		if (len > size - pos)
			len = size - pos;
		e->data = malloc(len ? len : 1);
		if (!e->data)
			abort();
		memcpy(e->data, data + pos, len);
		e->len = len;
		pos += len;
		t.count++;
	}

	r = snp_cert_chain_from_table(&t, &chain, &err);
	if (r < 0) {
		if (err.code != r || err.msg[0] == '\0' || chain)
			abort();
		snp_cert_table_clear(&t);
		return 0;
	}
	if (snp_cert_chain_has_leaf(chain)) {
		skr_error_clear(&err);
		if (snp_cert_chain_leaf_info(chain, &info, &err) == 0) {
			check_printable(info.product_name, sizeof(info.product_name));
			check_printable(info.csp_id, sizeof(info.csp_id));
			if (info.hwid_len != 0 && info.hwid_len != 8 && info.hwid_len != 64)
				abort();
		} else if (err.msg[0] == '\0') {
			abort();
		}
		skr_error_clear(&err);
		/* What the fetcher runs before caching: a result, and a reason when refused. */
		r = snp_cert_chain_verify_trusted(chain, amd_roots(), &err);
		if (r < 0 && (err.code != r || err.msg[0] == '\0'))
			abort();
	}
	/* The PEM of what was classified classifies the same way. */
	if (snp_cert_chain_to_pem(chain, &pem, NULL) == 0) {
		if (snp_cert_chain_from_pem(pem, strlen(pem), &again, NULL) < 0)
			abort();
		if (snp_cert_chain_has_leaf(again) != snp_cert_chain_has_leaf(chain) ||
		    snp_cert_chain_is_complete(again) != snp_cert_chain_is_complete(chain))
			abort();
		snp_cert_chain_free(again);
		free(pem);
	}
	snp_cert_chain_free(chain);
	snp_cert_table_clear(&t);
	return 0;
}
