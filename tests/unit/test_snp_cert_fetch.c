/* SPDX-License-Identifier: MIT */
/*
 * Certificate acquisition: KDS URL formats per product line, and fetching from the scripted
 * server standing in for AMD KDS, THIM and the Azure cache, with certificates of a virtual SNP
 * platform so that fetched chains really verify the report; the on-disk cache.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "b64.h"
#include "cleanup.h"
#include "fileio.h"
#include "ossl.h"
#include "skr.h"
#include "test_fs.h"
#include "test_http_server.h"
#include "test_platform.h"

struct world {
	char *tmp;
	struct snp_virtual *platform;
	uint8_t raw[SNP_REPORT_SIZE];
	struct snp_report report;
	struct snp_trust_store *trust;
	char *vcek_pem;    /* leaf */
	char *ask_ark_pem; /* what KDS cert_chain answers */
	uint8_t *vcek_der;
	size_t vcek_der_len;
	struct test_http_server *http, *https;
};

static struct world *W;

DEFINE_CLEANUP_FUNC(struct snp_cert_chain *, snp_cert_chain_free)
DEFINE_CLEANUP_FUNC(struct snp_cert_fetcher *, snp_cert_fetcher_free)

static int setup_world(void **state)
{
	struct skr_error err = {0};
	uint8_t report_data[64] = {1, 2, 3};
	_cleanup_free_ char *pdir = NULL;
	const char *chain, *second;
	BIO *bio;
	X509 *x;
	unsigned char *p;
	int n;

	W = calloc(1, sizeof(*W));
	assert_non_null(W);
	W->tmp = strdup("/tmp/test-cert-fetch-XXXXXX");
	assert_non_null(mkdtemp(W->tmp));
	pdir = path_join(W->tmp, "platform");

	/* One platform per binary: its RSA-4096 ARK and ASK take seconds to generate. */
	if (test_platform_new(pdir, NULL, &W->platform, &err) < 0 ||
	    snp_virtual_get_report(W->platform, report_data, 0, W->raw, &err) < 0 ||
	    snp_report_parse(W->raw, sizeof(W->raw), &W->report, &err) < 0 ||
	    snp_trust_store_new(&W->trust, &err) < 0 ||
	    snp_trust_store_add_pem(W->trust, snp_virtual_ark_pem(W->platform),
	                            strlen(snp_virtual_ark_pem(W->platform)), &err) < 0)
		fail_msg("virtual platform: %s", err.msg);

	/* leaf ‖ ASK ‖ ARK → the leaf (as DER, what KDS serves) and ASK ‖ ARK (cert_chain). */
	chain = snp_virtual_chain_pem(W->platform);
	second = strstr(chain + 1, "-----BEGIN CERTIFICATE-----");
	assert_non_null(second);
	W->vcek_pem = strndup(chain, (size_t)(second - chain));
	W->ask_ark_pem = strdup(second);
	bio = BIO_new_mem_buf(W->vcek_pem, -1);
	x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	assert_non_null(x);
	n = i2d_X509(x, NULL);
	assert_true(n > 0);
	W->vcek_der = malloc((size_t)n);
	p = W->vcek_der;
	assert_int_equal(i2d_X509(x, &p), n);
	W->vcek_der_len = (size_t)n;
	X509_free(x);
	BIO_free(bio);

	assert_int_equal(test_http_server_start(false, &W->http), 0);
	assert_int_equal(test_http_server_start(true, &W->https), 0);
	*state = W;
	return 0;
}

static int teardown_world(void **state)
{
	test_http_server_stop(W->http);
	test_http_server_stop(W->https);
	snp_virtual_free(W->platform);
	snp_trust_store_free(W->trust);
	assert_int_equal(test_fs_rm_rf(W->tmp), 0);
	free(W->tmp);
	free(W->vcek_pem);
	free(W->ask_ark_pem);
	free(W->vcek_der);
	free(W);
	return 0;
}

static int reset_servers(void **state)
{
	test_http_server_reset(W->http);
	test_http_server_reset(W->https);
	return 0;
}

/* A fresh, empty cache directory under the world's temp dir. */
static char *new_cache_dir(const char *name)
{
	char *d = path_join(W->tmp, name);

	assert_non_null(d);
	assert_int_equal(test_fs_rm_rf(d), 0);
	return d;
}

static void assert_chain_verifies(const struct snp_cert_chain *chain)
{
	struct skr_error err = {0};

	assert_true(snp_cert_chain_is_complete(chain));
	if (snp_report_verify(W->raw, sizeof(W->raw), chain, W->trust, &err) < 0)
		fail_msg("fetched chain does not verify the report: %s", err.msg);
}

static char *kds_vcek_path(void)
{
	char chip[129], *s;

	hex_encode(W->report.chip_id, 64, chip);
	assert_true(asprintf(&s, "/vcek/v1/Milan/%s", chip) > 0);
	return s;
}

static void script_kds(struct test_http_server *srv)
{
	_cleanup_free_ char *vcek_path = kds_vcek_path();
	struct test_http_reply vcek = {.path = vcek_path,
	                               .content_type = "application/octet-stream",
	                               .body = W->vcek_der,
	                               .body_len = W->vcek_der_len};

	test_http_server_push(srv, &vcek);
	test_http_server_reply(srv, "/vcek/v1/Milan/cert_chain", 200, "application/x-pem-file",
	                       W->ask_ark_pem);
}

/* ---- endpoint type names ---- */

static void test_certcache_type_from_string(void **state)
{
	static const struct {
		const char *s;
		int r;
		enum snp_certcache_type t;
	} cases[] = {
	        {"AMD", 0, SNP_CERTCACHE_AMD},
	        {"amd", 0, SNP_CERTCACHE_AMD},
	        {"AzCache", 0, SNP_CERTCACHE_AZCACHE},
	        {"AZCACHE", 0, SNP_CERTCACHE_AZCACHE},
	        {"LocalTHIM", 0, SNP_CERTCACHE_LOCAL_THIM},
	        {"localthim", 0, SNP_CERTCACHE_LOCAL_THIM},
	        {"", 0, SNP_CERTCACHE_NONE},
	        {NULL, 0, SNP_CERTCACHE_NONE},
	        {"THIM", -EINVAL, 0},
	        {"KDS", -EINVAL, 0},
	        {" AMD", -EINVAL, 0},
	        {"AMD ", -EINVAL, 0},
	};

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		enum snp_certcache_type t = (enum snp_certcache_type)99;

		assert_int_equal(snp_certcache_type_from_string(cases[i].s, &t), cases[i].r);
		if (cases[i].r == 0)
			assert_int_equal(t, cases[i].t);
	}
}

/* ---- KDS URL formats ---- */

static void make_report(struct snp_report *r, uint32_t version, uint8_t fam, uint8_t model,
                        enum snp_product layout, const struct snp_tcb *tcb, size_t chip_len)
{
	memset(r, 0, sizeof(*r));
	r->version = version;
	r->signature_algo = SNP_SIG_ALGO_ECDSA_P384_SHA384;
	r->cpuid_fam_id = fam;
	r->cpuid_mod_id = model;
	for (size_t i = 0; i < chip_len; i++)
		r->chip_id[i] = (uint8_t)(0xa0 + i);
	r->reported_tcb = snp_tcb_encode(tcb, layout);
}

static void test_kds_url_formats(void **state)
{
	static const char milan_chip[] = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbb"
	                                 "cbdbebfc0c1c2c3c4c5c6c7c8c9"
	                                 "cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf";
	const struct snp_tcb tcb = {.bootloader = 3, .tee = 0, .snp = 8, .microcode = 211};
	const struct snp_tcb turin_tcb = {
	        .fmc = 1, .bootloader = 1, .tee = 1, .snp = 4, .microcode = 82};
	struct snp_report r;
	struct skr_error err = {0};
	_cleanup_free_ char *expect = NULL;
	char *url;

	(void)state;
	/* Milan (v3 CPUID family 0x19 model 0x01): 128 hex digits, decimal SPLs (211 > 127). */
	make_report(&r, 3, 0x19, 0x01, SNP_PRODUCT_MILAN, &tcb, 64);
	assert_int_equal(snp_kds_vcek_url(NULL, &r, SNP_PRODUCT_UNKNOWN, &url, &err), 0);
	assert_true(asprintf(&expect,
	                     "https://kdsintf.amd.com/vcek/v1/Milan/%s?blSPL=3&teeSPL=0&snpSPL=8"
	                     "&ucodeSPL=211",
	                     milan_chip) > 0);
	assert_string_equal(url, expect);
	free(url);
	/* A base with a trailing slash. */
	assert_int_equal(
	        snp_kds_vcek_url("http://mirror.example/", &r, SNP_PRODUCT_UNKNOWN, &url, &err), 0);
	assert_int_equal(strncmp(url, "http://mirror.example/vcek/v1/Milan/a0a1", 40), 0);
	free(url);

	/* Genoa from CPUID (family 0x19 model 0x11): never the hard-coded Milan, hint ignored. */
	make_report(&r, 3, 0x19, 0x11, SNP_PRODUCT_GENOA, &tcb, 64);
	assert_int_equal(snp_kds_vcek_url(NULL, &r, SNP_PRODUCT_MILAN, &url, &err), 0);
	free(expect);
	assert_true(asprintf(&expect,
	                     "https://kdsintf.amd.com/vcek/v1/Genoa/%s?blSPL=3&teeSPL=0&snpSPL=8"
	                     "&ucodeSPL=211",
	                     milan_chip) > 0);
	assert_string_equal(url, expect);
	free(url);

	/* v2 has no CPUID: the hint tells Genoa from Milan. */
	make_report(&r, 2, 0, 0, SNP_PRODUCT_GENOA, &tcb, 64);
	assert_int_equal(snp_kds_vcek_url(NULL, &r, SNP_PRODUCT_GENOA, &url, &err), 0);
	assert_non_null(strstr(url, "/vcek/v1/Genoa/"));
	free(url);

	/* Turin (family 0x1A): 16 hex digits of CHIP_ID[0..7] and fmcSPL first. */
	make_report(&r, 3, 0x1a, 0x02, SNP_PRODUCT_TURIN, &turin_tcb, 8);
	assert_int_equal(snp_kds_vcek_url(NULL, &r, SNP_PRODUCT_UNKNOWN, &url, &err), 0);
	assert_string_equal(url, "https://kdsintf.amd.com/vcek/v1/Turin/a0a1a2a3a4a5a6a7"
	                         "?fmcSPL=1&blSPL=1&teeSPL=1&snpSPL=4&ucodeSPL=82");
	free(url);
}

static void test_kds_url_refusals(void **state)
{
	const struct snp_tcb tcb = {.bootloader = 3, .snp = 8, .microcode = 115};
	struct snp_report r;
	struct skr_error err = {0};
	char *url = (char *)"untouched";

	(void)state;
	make_report(&r, 3, 0x19, 0x01, SNP_PRODUCT_MILAN, &tcb, 64);
	r.key_info = SNP_SIGNING_KEY_VLEK << 2;
	assert_int_equal(snp_kds_vcek_url(NULL, &r, SNP_PRODUCT_UNKNOWN, &url, &err), -ENOTSUP);
	assert_null(url);
	assert_non_null(strstr(err.msg, "VLEK certificates come from the host (extended report); "
	                                "KDS serves only VCEKs"));

	skr_error_clear(&err);
	r.key_info = SNP_SIGNING_KEY_NONE << 2;
	assert_int_equal(snp_kds_vcek_url(NULL, &r, SNP_PRODUCT_UNKNOWN, &url, &err), -ENOTSUP);

	skr_error_clear(&err);
	r.key_info = 0;
	memset(r.chip_id, 0, sizeof(r.chip_id));
	assert_int_equal(snp_kds_vcek_url(NULL, &r, SNP_PRODUCT_UNKNOWN, &url, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "CHIP_ID"));

	skr_error_clear(&err);
	make_report(&r, 3, 0x17, 0x31, SNP_PRODUCT_MILAN, &tcb, 64); /* a Zen 2 CPUID */
	assert_int_equal(snp_kds_vcek_url(NULL, &r, SNP_PRODUCT_UNKNOWN, &url, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "product"));
}

/* ---- fetching ---- */

static void test_fetch_amd_kds(void **state)
{
	_cleanup_free_ char *endpoint = NULL, *vcek_url = NULL;
	_cleanup_(snp_cert_fetcher_freep) struct snp_cert_fetcher *f = NULL;
	_cleanup_(snp_cert_chain_freep) struct snp_cert_chain *chain = NULL;
	struct snp_certcache_config cfg = {.type = SNP_CERTCACHE_AMD, .timeout_ms = 5000};
	struct skr_error err = {0};
	const struct test_http_request *rq;

	(void)state;
	script_kds(W->http);
	/* The Go sidecar's endpoint form with /vcek/v1 names the same service. */
	assert_true(asprintf(&endpoint, "%s/vcek/v1", test_http_server_url(W->http)) > 0);
	cfg.endpoint = endpoint;
	assert_int_equal(snp_cert_fetcher_new(&cfg, &f, &err), 0);
	if (snp_cert_fetcher_get(f, &W->report, &chain, &err) < 0)
		fail_msg("KDS fetch: %s", err.msg);
	assert_chain_verifies(chain);

	assert_int_equal(test_http_server_request_count(W->http), 2);
	assert_int_equal(
	        snp_kds_vcek_url("http://h", &W->report, SNP_PRODUCT_UNKNOWN, &vcek_url, &err), 0);
	rq = test_http_server_request(W->http, 0);
	assert_string_equal(rq->method, "GET");
	assert_string_equal(rq->target, vcek_url + strlen("http://h"));
	assert_non_null(strstr(rq->target, "?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115"));
	assert_string_equal(test_http_server_request(W->http, 1)->target,
	                    "/vcek/v1/Milan/cert_chain");
}

static void test_fetch_kds_errors(void **state)
{
	_cleanup_(snp_cert_fetcher_freep) struct snp_cert_fetcher *f = NULL;
	struct snp_cert_chain *chain = NULL;
	struct snp_certcache_config cfg = {.type = SNP_CERTCACHE_AMD,
	                                   .endpoint = test_http_server_url(W->http)};
	struct snp_report vlek = W->report;
	struct skr_error err = {0};

	(void)state;
	assert_int_equal(snp_cert_fetcher_new(&cfg, &f, &err), 0);
	/* Nothing scripted: the server answers 404. */
	assert_int_equal(snp_cert_fetcher_get(f, &W->report, &chain, &err), -ENOENT);
	assert_null(chain);
	assert_non_null(strstr(err.msg, "AMD KDS"));
	assert_non_null(strstr(err.msg, "404"));
	assert_non_null(strstr(err.msg, "?<redacted>"));
	assert_int_equal(test_http_server_request_count(W->http), 1);

	/* A VCEK answer that is not a certificate. */
	skr_error_clear(&err);
	test_http_server_reset(W->http);
	{
		_cleanup_free_ char *p = kds_vcek_path();

		test_http_server_reply(W->http, p, 200, "application/octet-stream", "garbage");
	}
	assert_int_equal(snp_cert_fetcher_get(f, &W->report, &chain, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "DER"));

	/* A VLEK-signed report cannot be fetched by chip. */
	skr_error_clear(&err);
	vlek.key_info = SNP_SIGNING_KEY_VLEK << 2;
	assert_int_equal(snp_cert_fetcher_get(f, &vlek, &chain, &err), -ENOTSUP);
	assert_non_null(strstr(err.msg, "VLEK"));
}

static char *thim_json(void)
{
	_cleanup_json_ json_object *o = json_object_new_object();
	char tcbm[17];

	snprintf(tcbm, sizeof(tcbm), "%016" PRIx64, W->report.reported_tcb);
	json_object_object_add(o, "vcekCert", json_object_new_string(W->vcek_pem));
	json_object_object_add(o, "tcbm", json_object_new_string(tcbm));
	json_object_object_add(o, "certificateChain", json_object_new_string(W->ask_ark_pem));
	json_object_object_add(o, "cacheControl", json_object_new_string("86400"));
	return strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
}

static void test_fetch_local_thim(void **state)
{
	_cleanup_free_ char *json = thim_json(), *endpoint = NULL, *host_only = NULL;
	_cleanup_(snp_cert_chain_freep) struct snp_cert_chain *chain = NULL;
	struct snp_cert_fetcher *f = NULL;
	struct snp_certcache_config cfg = {.type = SNP_CERTCACHE_LOCAL_THIM};
	struct skr_error err = {0};
	const struct test_http_request *rq;

	(void)state;
	/* host:port/path without a scheme: THIM defaults to plain http (IMDS). */
	assert_true(asprintf(&endpoint, "127.0.0.1:%u/metadata/THIM/amd/certification",
	                     test_http_server_port(W->http)) > 0);
	cfg.endpoint = endpoint;
	test_http_server_reply(W->http, "/metadata/THIM/amd/certification", 200, "application/json",
	                       json);
	assert_int_equal(snp_cert_fetcher_new(&cfg, &f, &err), 0);
	if (snp_cert_fetcher_get(f, &W->report, &chain, &err) < 0)
		fail_msg("THIM fetch: %s", err.msg);
	assert_chain_verifies(chain);
	rq = test_http_server_request(W->http, 0);
	assert_string_equal(rq->method, "GET");
	assert_string_equal(rq->target, "/metadata/THIM/amd/certification");
	assert_non_null(test_http_request_header(rq, "Metadata"));
	assert_string_equal(test_http_request_header(rq, "Metadata"), "true");
	snp_cert_fetcher_free(f);
	snp_cert_chain_free(TAKE_PTR(chain));

	/* Host only: the standard THIM path is used. An invalid answer names THIM. */
	assert_true(asprintf(&host_only, "127.0.0.1:%u", test_http_server_port(W->http)) > 0);
	cfg.endpoint = host_only;
	test_http_server_reply(W->http, "/metadata/THIM/amd/certification", 200, "application/json",
	                       "{\"vcekCert\":1}");
	assert_int_equal(snp_cert_fetcher_new(&cfg, &f, &err), 0);
	assert_int_equal(snp_cert_fetcher_get(f, &W->report, &chain, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "THIM"));
	assert_non_null(strstr(err.msg, "vcekCert"));
	assert_string_equal(test_http_server_request(W->http, 1)->path,
	                    "/metadata/THIM/amd/certification");
	snp_cert_fetcher_free(f);
}

static void test_fetch_azcache(void **state)
{
	_cleanup_free_ char *endpoint = NULL, *expect = NULL, *expect2 = NULL, *path = NULL;
	_cleanup_(snp_cert_chain_freep) struct snp_cert_chain *chain = NULL;
	struct snp_cert_fetcher *f = NULL;
	struct snp_certcache_config cfg = {.type = SNP_CERTCACHE_AZCACHE};
	struct skr_error err = {0};
	char chip[129];

	(void)state;
	hex_encode(W->report.chip_id, 64, chip);
	/* host:port without a scheme: https, verified against the test CA given as ca_bundle. */
	assert_true(asprintf(&endpoint, "127.0.0.1:%u", test_http_server_port(W->https)) > 0);
	cfg.endpoint = endpoint;
	cfg.ca_bundle = test_http_server_ca_file(W->https);
	/* Lower-case hex, no padding: 0x7308000000000003 here. */
	assert_true(asprintf(&path, "/SevSnpVM/certificates/%s/%" PRIx64, chip,
	                     W->report.reported_tcb) > 0);
	assert_true(asprintf(&expect, "%s?api-version=2020-10-15-preview&clientId=ConfidentialACI",
	                     path) > 0);
	assert_string_equal(path + strlen(path) - 16, "7308000000000003");
	test_http_server_reply(W->https, path, 200, "application/x-pem-file",
	                       snp_virtual_chain_pem(W->platform));
	assert_int_equal(snp_cert_fetcher_new(&cfg, &f, &err), 0);
	if (snp_cert_fetcher_get(f, &W->report, &chain, &err) < 0)
		fail_msg("AzCache fetch: %s", err.msg);
	assert_chain_verifies(chain);
	assert_string_equal(test_http_server_request(W->https, 0)->target, expect);
	snp_cert_fetcher_free(f);

	/* Configured tee_type, api_version and client_id. */
	cfg.tee_type = "SevSnpVm2";
	cfg.api_version = "api-version=2099-01-01";
	cfg.client_id = "clientId=Test";
	free(path);
	assert_true(asprintf(&path, "/SevSnpVm2/certificates/%s/%" PRIx64, chip,
	                     W->report.reported_tcb) > 0);
	assert_true(asprintf(&expect2, "%s?api-version=2099-01-01&clientId=Test", path) > 0);
	test_http_server_reply(W->https, path, 200, NULL, snp_virtual_chain_pem(W->platform));
	assert_int_equal(snp_cert_fetcher_new(&cfg, &f, &err), 0);
	snp_cert_chain_free(TAKE_PTR(chain));
	assert_int_equal(snp_cert_fetcher_get(f, &W->report, &chain, &err), 0);
	assert_string_equal(test_http_server_request(W->https, 1)->target, expect2);
	snp_cert_fetcher_free(f);
}

static void test_cache_serves_and_recovers(void **state)
{
	_cleanup_free_ char *dir = new_cache_dir("cache-kds"), *file = NULL, *name = NULL;
	_cleanup_(snp_cert_fetcher_freep) struct snp_cert_fetcher *f = NULL;
	struct snp_cert_chain *chain = NULL;
	struct snp_certcache_config cfg = {.type = SNP_CERTCACHE_AMD,
	                                   .endpoint = test_http_server_url(W->http),
	                                   .cache_dir = dir,
	                                   .trust = W->trust}; /* the platform's ARK */
	struct test_http_reply down = {.status = 500, .body = "down", .sticky = true};
	struct skr_error err = {0};
	char chip[129];

	(void)state;
	hex_encode(W->report.chip_id, 64, chip);
	assert_true(asprintf(&name, "amd-Milan-%s-%016" PRIx64 ".pem", chip,
	                     W->report.reported_tcb) > 0);
	file = path_join(dir, name);

	/* First get: fetched and stored. */
	script_kds(W->http);
	assert_int_equal(snp_cert_fetcher_new(&cfg, &f, &err), 0);
	assert_int_equal(access(dir, F_OK), 0); /* created by new() */
	if (snp_cert_fetcher_get(f, &W->report, &chain, &err) < 0)
		fail_msg("first fetch: %s", err.msg);
	snp_cert_chain_free(chain);
	assert_int_equal(test_http_server_request_count(W->http), 2);
	assert_int_equal(access(file, R_OK), 0);

	/* Second get: the server is down (500 forever), the disk answers; no request is made. */
	test_http_server_push(W->http, &down);
	assert_int_equal(snp_cert_fetcher_get(f, &W->report, &chain, &err), 0);
	assert_chain_verifies(chain);
	snp_cert_chain_free(chain);
	assert_int_equal(test_http_server_request_count(W->http), 2);

	/* A corrupt entry is ignored and replaced by a fresh fetch. */
	assert_int_equal(write_file_atomic(file, "-----BEGIN CERTIFICATE-----\nbroken\n", 36, 0600),
	                 0);
	test_http_server_reset(W->http);
	script_kds(W->http);
	assert_int_equal(snp_cert_fetcher_get(f, &W->report, &chain, &err), 0);
	assert_chain_verifies(chain);
	snp_cert_chain_free(chain);
	assert_int_equal(test_http_server_request_count(W->http), 2);

	/* ... and the rewritten entry serves again with the network down. */
	test_http_server_reset(W->http);
	test_http_server_push(W->http, &down);
	assert_int_equal(snp_cert_fetcher_get(f, &W->report, &chain, &err), 0);
	snp_cert_chain_free(chain);
	assert_int_equal(test_http_server_request_count(W->http), 0);
}

static void test_cache_miss_with_server_down(void **state)
{
	_cleanup_free_ char *dir = new_cache_dir("cache-down");
	_cleanup_(snp_cert_fetcher_freep) struct snp_cert_fetcher *f = NULL;
	struct snp_cert_chain *chain = NULL;
	struct snp_certcache_config cfg = {.type = SNP_CERTCACHE_AMD,
	                                   .endpoint = test_http_server_url(W->http),
	                                   .cache_dir = dir};
	struct test_http_reply down = {.status = 503, .headers = "Retry-After: 0", .sticky = true};
	struct skr_error err = {0};

	(void)state;
	test_http_server_push(W->http, &down);
	assert_int_equal(snp_cert_fetcher_new(&cfg, &f, &err), 0);
	assert_int_equal(snp_cert_fetcher_get(f, &W->report, &chain, &err), -EAGAIN);
	assert_null(chain);
	assert_non_null(strstr(err.msg, "503"));
	/* Three attempts, as the anchor's policy. */
	assert_int_equal(test_http_server_request_count(W->http), 3);
}

/* Statuses map to errnos a caller can act on (style.md: -EPROTO is a malformed answer). */
static void test_fetch_status_errnos(void **state)
{
	static const struct {
		unsigned status;
		int expect;
		const char *mention;
	} cases[] = {
	        {404, -ENOENT, "no certificate for this chip and TCB"},
	        {401, -EACCES, "access refused"},
	        {403, -EACCES, "access refused"},
	        {429, -EAGAIN, "rate limited"},
	        {503, -EAGAIN, "try again later"},
	        {500, -EAGAIN, "HTTP 500"},
	        {418, -EPROTO, "HTTP 418"},
	        {301, -EPROTO, "HTTP 301"},
	};
	_cleanup_(snp_cert_fetcher_freep) struct snp_cert_fetcher *f = NULL;
	struct snp_certcache_config cfg = {.type = SNP_CERTCACHE_AZCACHE,
	                                   .endpoint = test_http_server_url(W->http)};
	struct skr_error err = {0};

	(void)state;
	assert_int_equal(snp_cert_fetcher_new(&cfg, &f, &err), 0);
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct test_http_reply rep = {.status = cases[i].status,
		                              .headers = "Retry-After: 0",
		                              .body = "no",
		                              .sticky = true};
		struct snp_cert_chain *chain = NULL;

		test_http_server_reset(W->http);
		test_http_server_push(W->http, &rep);
		skr_error_clear(&err);
		if (snp_cert_fetcher_get(f, &W->report, &chain, &err) != cases[i].expect ||
		    !strstr(err.msg, cases[i].mention))
			fail_msg("HTTP %u: %d '%s'", cases[i].status, err.code, err.msg);
		assert_null(chain);
	}
}

/*
 * A VERSION 2 report cannot tell Genoa from Milan: with no product configured, KDS's 404 for
 * Milan is followed by one Genoa request; with the product configured, Genoa is asked at once.
 */
static void test_fetch_amd_v2_genoa(void **state)
{
	_cleanup_free_ char *genoa_path = NULL, *milan_prefix = NULL;
	struct snp_certcache_config cfg = {.type = SNP_CERTCACHE_AMD,
	                                   .endpoint = test_http_server_url(W->http)};
	struct snp_report v2 = W->report;
	struct snp_cert_chain *chain = NULL;
	struct snp_cert_fetcher *f = NULL;
	struct skr_error err = {0};
	char chip[129];

	(void)state;
	v2.version = 2;
	v2.cpuid_fam_id = v2.cpuid_mod_id = v2.cpuid_step = 0;
	hex_encode(v2.chip_id, 64, chip);
	assert_true(asprintf(&genoa_path, "/vcek/v1/Genoa/%s", chip) > 0);
	assert_true(asprintf(&milan_prefix, "/vcek/v1/Milan/%s?", chip) > 0);
	for (int configured = 0; configured <= 1; configured++) {
		struct test_http_reply vcek = {.path = genoa_path,
		                               .content_type = "application/octet-stream",
		                               .body = W->vcek_der,
		                               .body_len = W->vcek_der_len};
		size_t first;

		test_http_server_reset(W->http);
		test_http_server_push(W->http, &vcek);
		test_http_server_reply(W->http, "/vcek/v1/Genoa/cert_chain", 200, NULL,
		                       W->ask_ark_pem);
		cfg.product = configured ? SNP_PRODUCT_GENOA : SNP_PRODUCT_UNKNOWN;
		assert_int_equal(snp_cert_fetcher_new(&cfg, &f, &err), 0);
		if (snp_cert_fetcher_get(f, &v2, &chain, &err) < 0)
			fail_msg("v2 Genoa (configured %d): %s", configured, err.msg);
		assert_true(snp_cert_chain_is_complete(chain));
		snp_cert_chain_free(chain);
		chain = NULL;
		snp_cert_fetcher_free(f);

		first = configured ? 0 : 1;
		assert_int_equal(test_http_server_request_count(W->http), first + 2);
		if (!configured)
			assert_int_equal(strncmp(test_http_server_request(W->http, 0)->target,
			                         milan_prefix, strlen(milan_prefix)),
			                 0);
		assert_string_equal(test_http_server_request(W->http, first)->path, genoa_path);
		assert_string_equal(test_http_server_request(W->http, first + 1)->path,
		                    "/vcek/v1/Genoa/cert_chain");
	}

	/* Neither line knows the chip: the Milan 404 is reported, after exactly two tries. */
	test_http_server_reset(W->http);
	cfg.product = SNP_PRODUCT_UNKNOWN;
	assert_int_equal(snp_cert_fetcher_new(&cfg, &f, &err), 0);
	skr_error_clear(&err);
	assert_int_equal(snp_cert_fetcher_get(f, &v2, &chain, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "/vcek/v1/Milan/"));
	assert_int_equal(test_http_server_request_count(W->http), 2);
	snp_cert_fetcher_free(f);

	/* A v3 Milan report is never retried as Genoa. */
	test_http_server_reset(W->http);
	assert_int_equal(snp_cert_fetcher_new(&cfg, &f, &err), 0);
	assert_int_equal(snp_cert_fetcher_get(f, &W->report, &chain, &err), -ENOENT);
	assert_int_equal(test_http_server_request_count(W->http), 1);
	snp_cert_fetcher_free(f);

	cfg.product = (enum snp_product)9;
	skr_error_clear(&err);
	assert_int_equal(snp_cert_fetcher_new(&cfg, &f, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "product"));
}

static size_t dir_count(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/*
 * With AMD's built-in ARKs (the default), the virtual platform's chain is untrusted: it is
 * handed out (its verifier will refuse it) but never written to the cache, and a cache entry
 * that does not verify is deleted and refetched rather than served.
 */
static void test_cache_only_trusted_chains(void **state)
{
	_cleanup_free_ char *dir = new_cache_dir("cache-untrusted"), *file = NULL, *name = NULL;
	_cleanup_(snp_cert_fetcher_freep) struct snp_cert_fetcher *f = NULL;
	struct snp_cert_chain *chain = NULL;
	struct snp_certcache_config cfg = {.type = SNP_CERTCACHE_AMD,
	                                   .endpoint = test_http_server_url(W->http),
	                                   .cache_dir = dir};
	struct skr_error err = {0};
	char chip[129];
	const char *pem = snp_virtual_chain_pem(W->platform);

	(void)state;
	hex_encode(W->report.chip_id, 64, chip);
	assert_true(asprintf(&name, "amd-Milan-%s-%016" PRIx64 ".pem", chip,
	                     W->report.reported_tcb) > 0);
	file = path_join(dir, name);

	script_kds(W->http);
	assert_int_equal(snp_cert_fetcher_new(&cfg, &f, &err), 0);
	if (snp_cert_fetcher_get(f, &W->report, &chain, &err) < 0)
		fail_msg("fetch: %s", err.msg);
	assert_chain_verifies(chain); /* against the platform's ARK, as MAA would judge it */
	snp_cert_chain_free(chain);
	assert_int_equal(dir_count(dir), 0);

	/* Planted (or left from a run with other roots): deleted, and the network asked. */
	assert_int_equal(write_file_atomic(file, pem, strlen(pem), 0600), 0);
	test_http_server_reset(W->http);
	script_kds(W->http);
	assert_int_equal(snp_cert_fetcher_get(f, &W->report, &chain, &err), 0);
	snp_cert_chain_free(chain);
	assert_int_equal(test_http_server_request_count(W->http), 2);
	assert_int_equal(access(file, F_OK), -1);
	assert_int_equal(dir_count(dir), 0);
}

/* Whoever can write to cache_dir chooses the certificates: it must be ours, closed to others. */
static void test_cache_dir_must_be_private(void **state)
{
	_cleanup_free_ char *dir = new_cache_dir("cache-private");
	struct snp_cert_fetcher *f = NULL;
	struct snp_certcache_config cfg = {.type = SNP_CERTCACHE_AMD, .cache_dir = dir};
	struct skr_error err = {0};

	(void)state;
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(snp_cert_fetcher_new(&cfg, &f, &err), 0);
	snp_cert_fetcher_free(f);

	for (mode_t m = 0; m <= 1; m++) {
		assert_int_equal(chmod(dir, m ? 0757 : 0770), 0);
		skr_error_clear(&err);
		assert_int_equal(snp_cert_fetcher_new(&cfg, &f, &err), -EPERM);
		assert_null(f);
		assert_non_null(strstr(err.msg, "writable by group or others"));
	}
	assert_int_equal(chmod(dir, 0755), 0); /* readable by others is fine */
	assert_int_equal(snp_cert_fetcher_new(&cfg, &f, &err), 0);
	snp_cert_fetcher_free(f);

	/* Another owner (only root can arrange that here). */
	if (geteuid() == 0) {
		assert_int_equal(chown(dir, 4242, (gid_t)-1), 0);
		skr_error_clear(&err);
		assert_int_equal(snp_cert_fetcher_new(&cfg, &f, &err), -EPERM);
		assert_non_null(strstr(err.msg, "belongs to uid 4242"));
		assert_int_equal(chown(dir, 0, (gid_t)-1), 0);
	}

	/* Not a directory. */
	assert_int_equal(rmdir(dir), 0);
	assert_int_equal(write_file_atomic(dir, "x", 1, 0600), 0);
	skr_error_clear(&err);
	assert_true(snp_cert_fetcher_new(&cfg, &f, &err) < 0);
	assert_null(f);
	assert_int_equal(unlink(dir), 0);
}

static void test_fetcher_config_errors(void **state)
{
	static const struct {
		enum snp_certcache_type type;
		const char *endpoint;
		const char *tee_type;
		const char *mention;
	} cases[] = {
	        {SNP_CERTCACHE_AMD, "ftp://kds.example", NULL, "ftp://"},
	        {SNP_CERTCACHE_AMD, "kds.example/x?y=1", NULL, "query"},
	        {SNP_CERTCACHE_AZCACHE, "https://", NULL, "no host"},
	        {SNP_CERTCACHE_LOCAL_THIM, "169.254.169.254 /x", NULL, "spaces"},
	        {SNP_CERTCACHE_AZCACHE, NULL, "Sev/SnpVM", "tee_type"},
	        {(enum snp_certcache_type)42, NULL, NULL, "endpoint_type"},
	};
	struct snp_cert_fetcher *f = NULL;
	struct snp_cert_chain *chain = NULL;
	struct snp_certcache_config none = {0};
	struct skr_error err = {0};

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct snp_certcache_config cfg = {.type = cases[i].type,
		                                   .endpoint = cases[i].endpoint,
		                                   .tee_type = cases[i].tee_type};

		skr_error_clear(&err);
		if (snp_cert_fetcher_new(&cfg, &f, &err) != -EINVAL ||
		    !strstr(err.msg, cases[i].mention))
			fail_msg("case %zu: '%s'", i, err.msg);
		assert_null(f);
	}

	/* No type: creating is fine (nothing to fetch from), getting says what to configure. */
	skr_error_clear(&err);
	assert_int_equal(snp_cert_fetcher_new(&none, &f, &err), 0);
	assert_int_equal(snp_cert_fetcher_get(f, &W->report, &chain, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "endpoint_type"));
	snp_cert_fetcher_free(f);
	snp_cert_fetcher_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_certcache_type_from_string),
	        cmocka_unit_test(test_kds_url_formats),
	        cmocka_unit_test(test_kds_url_refusals),
	        cmocka_unit_test_setup(test_fetch_amd_kds, reset_servers),
	        cmocka_unit_test_setup(test_fetch_kds_errors, reset_servers),
	        cmocka_unit_test_setup(test_fetch_local_thim, reset_servers),
	        cmocka_unit_test_setup(test_fetch_azcache, reset_servers),
	        cmocka_unit_test_setup(test_cache_serves_and_recovers, reset_servers),
	        cmocka_unit_test_setup(test_cache_miss_with_server_down, reset_servers),
	        cmocka_unit_test_setup(test_fetch_status_errnos, reset_servers),
	        cmocka_unit_test_setup(test_fetch_amd_v2_genoa, reset_servers),
	        cmocka_unit_test_setup(test_cache_only_trusted_chains, reset_servers),
	        cmocka_unit_test_setup(test_cache_dir_must_be_private, reset_servers),
	        cmocka_unit_test_setup(test_fetcher_config_errors, reset_servers),
	};

	return cmocka_run_group_tests(tests, setup_world, teardown_world);
}
