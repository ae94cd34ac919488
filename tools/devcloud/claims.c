/* SPDX-License-Identifier: MIT */
/*
 * The claims MAA derives from an SEV-SNP report (protocols.md §1.4): hex strings are the
 * lower-case hex of the raw report bytes in memory order, integers JSON numbers, policy bits
 * JSON booleans.
 *
 * Which TCB feeds the *-svn claims is not documented (§9.4). devcloud uses REPORTED_TCB —
 * the TCB the VCEK was derived for, which the verifier has just matched against the
 * certificate — decoded with the report's product layout (Turin's differs).
 */
#include <errno.h>
#include <string.h>

#include "b64.h"
#include "cleanup.h"
#include "devcloud.h"
#include "ossl.h"

static int add_hex(json_object *obj, const char *key, const uint8_t *data, size_t len)
{
	char hex[2 * 64 + 1];

	hex_encode(data, len, hex);
	return devcloud_json_add(obj, key, json_object_new_string(hex));
}

static int add_int(json_object *obj, const char *key, int64_t v)
{
	return devcloud_json_add(obj, key, json_object_new_int64(v));
}

static int add_bool(json_object *obj, const char *key, bool v)
{
	return devcloud_json_add(obj, key, json_object_new_boolean(v));
}

int devcloud_claims_add_report(json_object *c, const struct snp_report *r, enum snp_product product)
{
	struct snp_tcb tcb;

	snp_tcb_decode(r->reported_tcb, product, &tcb);
	if (add_hex(c, "x-ms-sevsnpvm-authorkeydigest", r->author_key_digest,
	            sizeof(r->author_key_digest)) < 0 ||
	    add_int(c, "x-ms-sevsnpvm-bootloader-svn", tcb.bootloader) < 0 ||
	    add_hex(c, "x-ms-sevsnpvm-familyId", r->family_id, sizeof(r->family_id)) < 0 ||
	    add_int(c, "x-ms-sevsnpvm-guestsvn", r->guest_svn) < 0 ||
	    add_hex(c, "x-ms-sevsnpvm-hostdata", r->host_data, sizeof(r->host_data)) < 0 ||
	    add_hex(c, "x-ms-sevsnpvm-idkeydigest", r->id_key_digest, sizeof(r->id_key_digest)) <
	            0 ||
	    add_hex(c, "x-ms-sevsnpvm-imageId", r->image_id, sizeof(r->image_id)) < 0 ||
	    add_bool(c, "x-ms-sevsnpvm-is-debuggable", (r->policy & SNP_POLICY_DEBUG) != 0) < 0 ||
	    add_hex(c, "x-ms-sevsnpvm-launchmeasurement", r->measurement, sizeof(r->measurement)) <
	            0 ||
	    add_int(c, "x-ms-sevsnpvm-microcode-svn", tcb.microcode) < 0 ||
	    add_bool(c, "x-ms-sevsnpvm-migration-allowed",
	             (r->policy & SNP_POLICY_MIGRATE_MA) != 0) < 0 ||
	    add_hex(c, "x-ms-sevsnpvm-reportdata", r->report_data, sizeof(r->report_data)) < 0 ||
	    add_hex(c, "x-ms-sevsnpvm-reportid", r->report_id, sizeof(r->report_id)) < 0 ||
	    add_bool(c, "x-ms-sevsnpvm-smt-allowed", (r->policy & SNP_POLICY_SMT) != 0) < 0 ||
	    add_int(c, "x-ms-sevsnpvm-snpfw-svn", tcb.snp) < 0 ||
	    add_int(c, "x-ms-sevsnpvm-tee-svn", tcb.tee) < 0 ||
	    add_int(c, "x-ms-sevsnpvm-vmpl", r->vmpl) < 0)
		return -ENOMEM;
	return 0;
}

int devcloud_claims_build(const struct devcloud_evidence *ev, const char *compliance_status,
                          const char *policy_hash, const char *nonce, json_object **out)
{
	_cleanup_json_ json_object *c = json_object_new_object();

	if (!c)
		return -ENOMEM;
	if (devcloud_json_add(c, "x-ms-ver", json_object_new_string("1.0")) < 0 ||
	    devcloud_json_add(c, "x-ms-attestation-type", json_object_new_string("sevsnpvm")) < 0 ||
	    devcloud_json_add(c, "x-ms-compliance-status",
	                      json_object_new_string(compliance_status)) < 0 ||
	    devcloud_json_add(c, "x-ms-policy-hash", json_object_new_string(policy_hash)) < 0)
		return -ENOMEM;
	if (devcloud_claims_add_report(c, &ev->report, ev->product) < 0)
		return -ENOMEM;
	/* The token owns its own reference: the evidence keeps its copy. */
	if (ev->runtime && devcloud_json_add(c, "x-ms-runtime", json_object_get(ev->runtime)) < 0)
		return -ENOMEM;
	/* MAA echoes the request nonce; devcloud names the claim `nonce` (§9.3: unconfirmed). */
	if (nonce && devcloud_json_add(c, "nonce", json_object_new_string(nonce)) < 0)
		return -ENOMEM;
	*out = TAKE_PTR(c);
	return 0;
}
