/* SPDX-License-Identifier: MIT */
/*
 * snp_cert_table_parse on arbitrary bytes (the host-supplied EXT_REPORT / auxblob buffer):
 * never crash, every refusal has a reason, whatever parses survives serialize -> parse, and
 * the certificates it holds go through chain classification and AMD extension parsing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "skr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct snp_cert_table t, again;
	struct skr_error err = {0};
	struct snp_cert_chain *chain = NULL;
	struct snp_vcek_info info;
	uint8_t *buf = NULL;
	size_t len;

	if (snp_cert_table_parse(data, size, &t, &err) < 0) {
		if (err.code == 0 || err.msg[0] == '\0' || t.count != 0)
			abort();
		return 0;
	}
	if (t.count > SNP_CERT_TABLE_MAX)
		abort();
	if (snp_cert_table_serialize(&t, &buf, &len, &err) < 0)
		abort();
	if (len % 4096 != 0 || snp_cert_table_parse(buf, len, &again, &err) < 0)
		abort();
	if (again.count != t.count)
		abort();
	for (size_t i = 0; i < t.count; i++)
		if (again.entries[i].kind != t.entries[i].kind ||
		    again.entries[i].len != t.entries[i].len ||
		    memcmp(again.entries[i].guid, t.entries[i].guid, 16) != 0 ||
		    memcmp(again.entries[i].data, t.entries[i].data, t.entries[i].len) != 0)
			abort();
	free(buf);
	snp_cert_table_clear(&again);

	skr_error_clear(&err);
	if (snp_cert_chain_from_table(&t, &chain, &err) == 0) {
		if (snp_cert_chain_has_leaf(chain))
			(void)snp_cert_chain_leaf_info(chain, &info, &err);
		snp_cert_chain_free(chain);
	} else if (err.msg[0] == '\0') {
		abort();
	}
	snp_cert_table_clear(&t);
	return 0;
}
