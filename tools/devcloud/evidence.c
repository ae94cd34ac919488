/* SPDX-License-Identifier: MIT */
/*
 * The evidence checks of an MAA SEV-SNP attestation, shared by the attest endpoint and
 * `devcloud verify-report`. Each failure names the step, so a client sees why MAA (here,
 * devcloud) refused its evidence.
 *
 * REPORT_DATA[32:64]: the Go anchor zero-fills it and whether MAA insists on zeros is not
 * known (protocols.md §9.3), so devcloud binds only REPORT_DATA[0:32] = SHA-256(runtime data)
 * and accepts any upper half, like the anchor's documented contract.
 */
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "b64.h"
#include "cleanup.h"
#include "devcloud.h"
#include "json_util.h"

DEFINE_CLEANUP_FUNC(struct snp_cert_chain *, snp_cert_chain_free)

void devcloud_evidence_clear(struct devcloud_evidence *e)
{
	if (!e)
		return;
	json_object_put(e->runtime);
	memset(e, 0, sizeof(*e));
}

static int check_binding(const struct snp_report *r, const uint8_t *runtime, size_t len,
                         struct skr_error *err)
{
	uint8_t digest[32];
	char want[65], got[65];

	if (EVP_Digest(runtime, len, digest, NULL, EVP_sha256(), NULL) != 1)
		return skr_error_set(err, -ENOMEM, "SHA-256 of the runtime data failed");
	if (CRYPTO_memcmp(digest, r->report_data, sizeof(digest)) == 0)
		return 0;
	hex_encode(r->report_data, 32, got);
	hex_encode(digest, sizeof(digest), want);
	return skr_error_set(err, -EBADMSG,
	                     "REPORT_DATA mismatch: REPORT_DATA[0:32] is %s but SHA-256 of the "
	                     "runtime data is %s; the report must be requested with "
	                     "REPORT_DATA = SHA-256(runtime data) || 32 zero bytes",
	                     got, want);
}

int devcloud_evidence_verify(const struct snp_trust_store *trust, const uint8_t *report,
                             size_t report_len, const char *chain_pem, size_t chain_len,
                             bool have_runtime, const uint8_t *runtime, size_t runtime_len,
                             bool runtime_is_json, struct devcloud_evidence *out,
                             struct skr_error *err)
{
	_cleanup_(snp_cert_chain_freep) struct snp_cert_chain *chain = NULL;
	struct snp_vcek_info info;
	struct skr_error serr = {0};
	int r;

	memset(out, 0, sizeof(*out));
	if (report_len != SNP_REPORT_SIZE)
		return skr_error_set(err, -EINVAL, "SnpReport is %zu bytes, expected %d (%s)",
		                     report_len, SNP_REPORT_SIZE,
		                     report_len < SNP_REPORT_SIZE ? "truncated" : "oversized");
	r = snp_report_parse(report, report_len, &out->report, &serr);
	if (r < 0)
		return skr_error_set(err, r, "SnpReport is not a valid SEV-SNP report: %s",
		                     skr_error_message(&serr));
	r = snp_cert_chain_from_pem(chain_pem, chain_len, &chain, &serr);
	if (r < 0)
		return skr_error_set(err, r, "VcekCertChain is not a usable certificate chain: %s",
		                     skr_error_message(&serr));
	r = snp_report_verify(report, report_len, chain, trust, &serr);
	if (r < 0)
		return skr_error_set(err, r, "SNP report verification failed: %s",
		                     skr_error_message(&serr));

	/* v2 reports cannot tell Genoa from Milan: the VCEK's productName decides. */
	if (snp_cert_chain_leaf_info(chain, &info, NULL) < 0)
		info.product = SNP_PRODUCT_UNKNOWN;
	out->product = snp_report_product(&out->report, info.product);

	if (have_runtime) {
		r = check_binding(&out->report, runtime, runtime_len, err);
		if (r < 0)
			return r;
	}
	if (have_runtime && runtime_is_json && runtime_len > 0) {
		r = json_parse((const char *)runtime, runtime_len, "runtime data", &out->runtime,
		               &serr);
		if (r < 0)
			return skr_error_set(err, r, "%s", skr_error_message(&serr));
		/* x-ms-runtime is an object claim; policies address it as x-ms-runtime.<name>. */
		if (!json_object_is_type(out->runtime, json_type_object)) {
			devcloud_evidence_clear(out);
			return skr_error_set(
			        err, -EINVAL,
			        "runtime data is JSON but not a JSON object; it becomes "
			        "the x-ms-runtime object claim");
		}
	}
	return 0;
}
