/* SPDX-License-Identifier: MIT */
/*
 * snp_report_parse on arbitrary bytes: never crash, and whatever parses must survive
 * serialize → parse unchanged (parse(serialize(r)) == r, skr.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "skr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct snp_report r, again;
	struct skr_error err = {0};
	uint8_t buf[SNP_REPORT_SIZE];
	struct snp_tcb tcb, tcb2;

	if (snp_report_parse(data, size, &r, &err) < 0) {
		if (err.code == 0 || err.msg[0] == '\0')
			abort(); /* every refusal carries a reason */
		return 0;
	}
	snp_report_serialize(&r, buf);
	if (snp_report_parse(buf, sizeof(buf), &again, &err) < 0)
		abort();
	if (memcmp(&r, &again, sizeof(r)) != 0)
		abort();

	/* Product detection takes any report; decode(encode(decode(x))) == decode(x). */
	for (int hint = SNP_PRODUCT_UNKNOWN; hint <= SNP_PRODUCT_TURIN; hint++) {
		enum snp_product p = snp_report_product(&r, (enum snp_product)hint);

		snp_tcb_decode(r.reported_tcb, p, &tcb);
		snp_tcb_decode(snp_tcb_encode(&tcb, p), p, &tcb2);
		if (memcmp(&tcb, &tcb2, sizeof(tcb)) != 0)
			abort();
	}
	return 0;
}
