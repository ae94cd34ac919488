/* SPDX-License-Identifier: MIT */
/*
 * The virtual platform's certificates, served the way AMD's KDS (protocols.md §3.1) and Azure's
 * THIM (§3.4) serve real ones, so a client's certificate fetching runs for real against
 * devcloud:
 *
 *   GET /vcek/v1/{Product}/{hwid}?blSPL=&teeSPL=&snpSPL=&ucodeSPL=[&fmcSPL=]  VCEK (DER)
 *   GET /vcek/v1/{Product}/cert_chain                                        ASK ‖ ARK (PEM)
 *   GET /metadata/THIM/amd/certification  (header Metadata: true)           THIM JSON
 *
 * A VCEK is only returned for the platform's own product, CHIP_ID and TCB (404 otherwise, as
 * KDS has no certificate for an unknown chip or TCB). CRL and VLEK paths are not served.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "b64.h"
#include "cleanup.h"
#include "devcloud.h"
#include "ossl.h"

void devcloud_platform_certs_clear(struct devcloud_platform_certs *c)
{
	free(c->leaf_der);
	free(c->leaf_pem);
	free(c->chain_pem);
	memset(c, 0, sizeof(*c));
}

static int der_to_pem(const uint8_t *der, size_t len, char **out, struct skr_error *err)
{
	const unsigned char *p = der;
	_cleanup_(X509_freep) X509 *cert = d2i_X509(NULL, &p, (long)len);

	if (!cert)
		return ossl_error_set(err, -EINVAL, "virtual platform certificate");
	return devcloud_pki_cert_pem(cert, out, err);
}

int devcloud_platform_certs_load(struct devcloud *dc, struct skr_error *err)
{
	struct devcloud_platform_certs *c = &dc->certs;
	const struct snp_virtual_params *p = snp_virtual_params(dc->platform);
	const struct snp_cert_table_entry *leaf, *ask, *ark;
	_cleanup_free_ char *ask_pem = NULL, *ark_pem = NULL;
	struct snp_cert_table t = {0};
	int r;

	r = snp_virtual_cert_table(dc->platform, &t, err);
	if (r < 0)
		return skr_error_prefix(err, "virtual platform certificates: ");
	c->vlek = p->vlek;
	leaf = snp_cert_table_find(&t, p->vlek ? SNP_CERT_VLEK : SNP_CERT_VCEK);
	ask = snp_cert_table_find(&t, SNP_CERT_ASK);
	ark = snp_cert_table_find(&t, SNP_CERT_ARK);
	if (!leaf || !ask || !ark) {
		r = skr_error_set(
		        err, -EINVAL,
		        "virtual platform certificates: the table lacks the %s, ASK or ARK",
		        p->vlek ? "VLEK" : "VCEK");
		goto out;
	}
	c->leaf_der = malloc(leaf->len);
	if (!c->leaf_der) {
		r = skr_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	memcpy(c->leaf_der, leaf->data, leaf->len);
	c->leaf_der_len = leaf->len;
	if ((r = der_to_pem(leaf->data, leaf->len, &c->leaf_pem, err)) < 0 ||
	    (r = der_to_pem(ask->data, ask->len, &ask_pem, err)) < 0 ||
	    (r = der_to_pem(ark->data, ark->len, &ark_pem, err)) < 0)
		goto out;
	if (asprintf(&c->chain_pem, "%s%s", ask_pem, ark_pem) < 0) {
		c->chain_pem = NULL;
		r = skr_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	c->tcb = snp_tcb_encode(&p->tcb, p->product);
out:
	snp_cert_table_clear(&t);
	return r;
}

static int not_found(struct devcloud_response *resp, const char *what)
{
	return devcloud_response_error(resp, 404, "NotFound", "%s", what);
}

/* A decimal SPL of 0..255; KDS clients send 1 or 2 digits, some zero-padded. */
static int spl_arg(const struct devcloud_request *req, const char *name, bool required, int *out,
                   struct devcloud_response *resp, bool *answered)
{
	const char *v = devcloud_request_query(req, name, NULL);
	unsigned long n = 0;

	*out = -1;
	if (!v) {
		if (!required)
			return 0;
		*answered = true;
		return devcloud_response_error(resp, 400, "InvalidParameter",
		                               "query parameter %s is required", name);
	}
	if (!*v || strlen(v) > 3)
		goto bad;
	for (const char *c = v; *c; c++) {
		if (*c < '0' || *c > '9')
			goto bad;
		n = n * 10 + (unsigned long)(*c - '0');
	}
	if (n > 255)
		goto bad;
	*out = (int)n;
	return 0;
bad:
	*answered = true;
	return devcloud_response_error(resp, 400, "InvalidParameter",
	                               "query parameter %s must be a number 0..255", name);
}

static int handle_vcek(struct devcloud *dc, const struct devcloud_request *req, const char *hwid,
                       struct devcloud_response *resp)
{
	const struct snp_virtual_params *p = snp_virtual_params(dc->platform);
	bool turin = p->product == SNP_PRODUCT_TURIN, answered = false;
	/* Turin VCEKs are keyed by the first 8 bytes of CHIP_ID only (§3.1). */
	size_t id_len = turin ? 8 : sizeof(p->chip_id);
	char want[2 * 64 + 1];
	int bl, tee, snp, ucode, fmc, r;

	if ((r = spl_arg(req, "blSPL", true, &bl, resp, &answered)) < 0 || answered ||
	    (r = spl_arg(req, "teeSPL", true, &tee, resp, &answered)) < 0 || answered ||
	    (r = spl_arg(req, "snpSPL", true, &snp, resp, &answered)) < 0 || answered ||
	    (r = spl_arg(req, "ucodeSPL", true, &ucode, resp, &answered)) < 0 || answered ||
	    (r = spl_arg(req, "fmcSPL", turin, &fmc, resp, &answered)) < 0 || answered)
		return r;
	if (dc->certs.vlek)
		return not_found(resp, "the virtual platform signs with a VLEK; there is no VCEK");
	hex_encode(p->chip_id, id_len, want);
	if (strlen(hwid) != 2 * id_len || strcasecmp(hwid, want) != 0)
		return not_found(resp, "no VCEK for this hwid: not the virtual platform's CHIP_ID");
	if (bl != p->tcb.bootloader || tee != p->tcb.tee || snp != p->tcb.snp ||
	    ucode != p->tcb.microcode || (turin && fmc != p->tcb.fmc))
		return not_found(resp, "no VCEK for this TCB: the SPLs are not the virtual "
		                       "platform's reported TCB");
	return devcloud_response_bytes(resp, 200, "application/pkix-cert", dc->certs.leaf_der,
	                               dc->certs.leaf_der_len);
}

int devcloud_handle_kds(struct devcloud *dc, const struct devcloud_request *req,
                        struct devcloud_response *resp)
{
	const struct snp_virtual_params *p = snp_virtual_params(dc->platform);
	const char *product = snp_product_name(p->product);
	const char *rest = req->path + strlen("/vcek/v1/");
	size_t plen = strlen(product);

	if (strncmp(rest, product, plen) != 0 || rest[plen] != '/')
		return devcloud_response_error(resp, 404, "NotFound",
		                               "no such product or path; the virtual platform is "
		                               "a %s: /vcek/v1/%s/...",
		                               product, product);
	rest += plen + 1;
	if (strcmp(rest, "cert_chain") == 0)
		return devcloud_response_bytes(resp, 200, "application/x-pem-file",
		                               dc->certs.chain_pem, strlen(dc->certs.chain_pem));
	if (!*rest || strchr(rest, '/'))
		return not_found(resp, "no such KDS path");
	return handle_vcek(dc, req, rest, resp);
}

int devcloud_handle_thim(struct devcloud *dc, const struct devcloud_request *req,
                         struct devcloud_response *resp)
{
	_cleanup_json_ json_object *root = json_object_new_object();
	const char *metadata = devcloud_request_header(req, "Metadata");
	char tcbm[17];

	if (!root)
		return -ENOMEM;
	/* IMDS refuses requests without it: it proves the caller is not a forwarded browser. */
	if (!metadata || strcasecmp(metadata, "true") != 0)
		return devcloud_response_error(resp, 400, "BadRequest",
		                               "Required metadata header not specified: send "
		                               "'Metadata: true'");
	if (dc->certs.vlek)
		return not_found(resp, "the virtual platform signs with a VLEK; THIM serves VCEKs");
	/* tcbm: REPORTED_TCB as 16 hex digits of the little-endian u64 (§1.2). */
	snprintf(tcbm, sizeof(tcbm), "%016" PRIX64, dc->certs.tcb);
	json_object_object_add(root, "vcekCert", json_object_new_string(dc->certs.leaf_pem));
	json_object_object_add(root, "tcbm", json_object_new_string(tcbm));
	json_object_object_add(root, "certificateChain",
	                       json_object_new_string(dc->certs.chain_pem));
	json_object_object_add(root, "cacheControl", json_object_new_string("86400"));
	return devcloud_response_json(resp, 200, root);
}
