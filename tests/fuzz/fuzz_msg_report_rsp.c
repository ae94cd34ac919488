/* SPDX-License-Identifier: MIT */
/*
 * snp_msg_report_rsp_check on arbitrary bytes: the MSG_REPORT_RSP a kernel (or, through a buggy
 * or hostile host path, anyone) hands back from /dev/sev-guest or /dev/sev. Never crash; accept
 * exactly STATUS 0 with REPORT_SIZE 1184 in a buffer long enough, and copy the report verbatim;
 * every refusal has a reason; the accepted report goes on to the report parser.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "snp_source_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t report[SNP_REPORT_SIZE];
	struct snp_report parsed;
	struct skr_error err = {0};
	bool acceptable = size >= SNP_MSG_REPORT_RSP_MIN_LEN &&
	                  get_le32(data + SNP_MSG_REPORT_RSP_STATUS_OFF) == 0 &&
	                  get_le32(data + SNP_MSG_REPORT_RSP_SIZE_OFF) == SNP_REPORT_SIZE;
	int r = snp_msg_report_rsp_check(data, size, report, &err);

	if ((r == 0) != acceptable)
		abort();
	if (r < 0) {
		if (err.code != r || err.msg[0] == '\0' || (r != -EIO && r != -EPROTO))
			abort();
		return 0;
	}
	if (memcmp(report, data + SNP_MSG_REPORT_RSP_REPORT_OFF, SNP_REPORT_SIZE) != 0)
		abort();
	skr_error_clear(&err);
	if (snp_report_parse(report, sizeof(report), &parsed, &err) < 0 && err.msg[0] == '\0')
		abort();
	return 0;
}
