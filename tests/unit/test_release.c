/* SPDX-License-Identifier: MIT */
/*
 * Secure key release, client side (skr_release_key, §7.5) over the virtual SNP platform, with
 * the scripted HTTPS server playing MAA, IMDS and Key Vault at once.
 *
 * The vault's answer depends on the wrapping key the client generates during the call, so it
 * cannot be scripted in advance: a "vault" thread watches for the MAA request, reads the runtime
 * data (the KEK's public JWK) from it, wraps the key with skr_key_wrap() and queues a real
 * release answer — a JWS signed RS256 by a certificate for "localhost" issued by a test CA
 * (through an intermediate) — while the MAA reply is held back for a moment.
 *
 * The vault is addressed as localhost:PORT (the name its signing certificate carries), MAA as
 * 127.0.0.1:PORT (the MAA token's issuer and the release policy's authority).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "b64.h"
#include "cleanup.h"
#include "fileio.h"
#include "json_util.h"
#include "log.h"
#include "ossl.h"
#include "release_internal.h"
#include "secret.h"
#include "skr.h"
#include "test_fs.h"
#include "test_http_server.h"
#include "test_log.h"
#include "test_pki.h"

#define MAA_PATH "/attest/SevSnpVm"
#define RELEASE_PATH "/keys/mykey/release"
#define KEY_PATH "/keys/mykey"
#define IMDS_PATH "/metadata/identity/oauth2/token"
#define BEARER "bearer-for-the-vault"
#define HOSTDATA "a5f1e3c2d4b6a8e0f1e3c2d4b6a8e0f1e3c2d4b6a8e0f1e3c2d4b6a8e0f1e3c2"
/* How long MAA holds its answer, giving the vault thread time to queue the release answer. */
#define MAA_DELAY_MS 400

static struct {
	char tmp[64];
	char *platform, *context, *bundle;
	struct test_http_server *srv;
	char maa[64];   /* 127.0.0.1:PORT */
	char vault[64]; /* localhost:PORT */
	char issuer[80];

	struct test_pki_cert root, inter, leaf;      /* trusted vault signing chain */
	struct test_pki_cert rogue_root, rogue_leaf; /* localhost, but from an untrusted CA */
	struct test_pki_cert other_host;             /* trusted CA, wrong name */
	EVP_PKEY *maa_key;
	char *maa_token;

	uint8_t oct[32];
	uint8_t *rsa_der, *ec_der;
	size_t rsa_der_len, ec_der_len;

	struct skr_attester *attester;
} W;

static char *cat(const char *a, const char *b)
{
	char *s = path_join(a, b);

	assert_non_null(s);
	return s;
}

static void pkcs8(EVP_PKEY *k, uint8_t **der, size_t *len)
{
	unsigned char *p = NULL;
	PKCS8_PRIV_KEY_INFO *info = EVP_PKEY2PKCS8(k);
	int n;

	assert_non_null(info);
	n = i2d_PKCS8_PRIV_KEY_INFO(info, &p);
	assert_true(n > 0);
	*der = malloc((size_t)n);
	memcpy(*der, p, (size_t)n);
	*len = (size_t)n;
	OPENSSL_free(p);
	PKCS8_PRIV_KEY_INFO_free(info);
}

static struct skr_attester *make_attester(long timeout_ms, int attempts, int pool)
{
	struct skr_attest_config cfg = {0};
	struct skr_attester *a = NULL;
	struct skr_error err = {0};

	cfg.source.kind = SNP_SOURCE_VIRTUAL;
	cfg.source.virtual_dir = W.platform;
	cfg.security_context_dir = W.context;
	cfg.ca_bundle = W.bundle;
	cfg.timeout_ms = timeout_ms;
	cfg.max_attempts = attempts;
	cfg.identity.imds_endpoint = test_http_server_url(W.srv);
	cfg.kek_pool_size = pool;
	if (skr_attester_new(&cfg, &a, &err) < 0)
		fail_msg("skr_attester_new: %s", err.msg);
	return a;
}

static int setup(void **state)
{
	struct snp_virtual_params p;
	struct skr_error err = {0};
	_cleanup_free_ char *pem = NULL, *ca_pem = NULL, *payload = NULL;
	size_t len;

	snprintf(W.tmp, sizeof(W.tmp), "/tmp/test_release.XXXXXX");
	assert_non_null(mkdtemp(W.tmp));
	W.platform = cat(W.tmp, "platform");
	W.context = cat(W.tmp, "context");
	W.bundle = cat(W.tmp, "ca-bundle.pem");
	assert_int_equal(mkdir(W.context, 0700), 0);
	snp_virtual_params_default(&p);
	assert_int_equal(hex_decode(HOSTDATA, 64, p.host_data, 32), 0);
	if (snp_virtual_create(W.platform, &p, &err) < 0)
		fail_msg("snp_virtual_create: %s", err.msg);

	assert_int_equal(test_http_server_start(true, &W.srv), 0);
	snprintf(W.maa, sizeof(W.maa), "127.0.0.1:%u", test_http_server_port(W.srv));
	snprintf(W.vault, sizeof(W.vault), "localhost:%u", test_http_server_port(W.srv));
	snprintf(W.issuer, sizeof(W.issuer), "https://%s", W.maa);

	/* The vault's signing chain: root (trusted) → intermediate → leaf for localhost. */
	test_pki_ca("test vault root", &W.root);
	test_pki_intermediate(&W.root, "test vault issuing CA", &W.inter);
	test_pki_leaf(&W.inter, "localhost", NULL, &W.leaf);
	test_pki_ca("rogue root", &W.rogue_root);
	test_pki_leaf(&W.rogue_root, "localhost", NULL, &W.rogue_leaf);
	test_pki_leaf(&W.inter, "vault.example.net", NULL, &W.other_host);
	/* The attester's bundle: the HTTPS server's CA and the vault signing root. */
	assert_int_equal(read_file(test_http_server_ca_file(W.srv), 1 << 20, &ca_pem, &len), 0);
	test_pki_append_file(W.bundle, ca_pem);
	pem = test_pki_pem(W.root.cert);
	test_pki_append_file(W.bundle, pem);

	/* An MAA token for the platform's claims (the client only reads it on a 403). */
	W.maa_key = EVP_RSA_gen(2048);
	assert_non_null(W.maa_key);
	assert_true(asprintf(&payload,
	                     "{\"iss\":\"%s\",\"exp\":%lld,\"jti\":\"maa-jti-5\","
	                     "\"x-ms-attestation-type\":\"sevsnpvm\","
	                     "\"x-ms-sevsnpvm-hostdata\":\"%s\",\"x-ms-sevsnpvm-is-debuggable\":"
	                     "false,\"x-ms-sevsnpvm-vmpl\":0}",
	                     W.issuer, (long long)time(NULL) + 3600, HOSTDATA) > 0);
	W.maa_token = test_jws_sign(W.maa_key,
	                            "{\"alg\":\"RS256\",\"kid\":\"maa\",\"typ\":\"JWT\"}", payload);

	/* The keys the vault holds. */
	assert_int_equal(RAND_bytes(W.oct, sizeof(W.oct)), 1);
	{
		EVP_PKEY *rsa = EVP_RSA_gen(2048), *ec = EVP_EC_gen("P-256");

		assert_non_null(rsa);
		assert_non_null(ec);
		pkcs8(rsa, &W.rsa_der, &W.rsa_der_len);
		pkcs8(ec, &W.ec_der, &W.ec_der_len);
		EVP_PKEY_free(rsa);
		EVP_PKEY_free(ec);
	}
	W.attester = make_attester(5000, 3, 0);
	return 0;
}

static int teardown(void **state)
{
	skr_attester_free(W.attester);
	test_http_server_stop(W.srv);
	test_fs_rm_rf(W.tmp);
	free(W.platform);
	free(W.context);
	free(W.bundle);
	test_pki_cert_clear(&W.root);
	test_pki_cert_clear(&W.inter);
	test_pki_cert_clear(&W.leaf);
	test_pki_cert_clear(&W.rogue_root);
	test_pki_cert_clear(&W.rogue_leaf);
	test_pki_cert_clear(&W.other_host);
	EVP_PKEY_free(W.maa_key);
	free(W.maa_token);
	free(W.rsa_der);
	free(W.ec_der);
	return 0;
}

static int reset(void **state)
{
	test_http_server_reset(W.srv);
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The vault thread
 * ------------------------------------------------------------------------------------------- */

struct vault {
	/* what to answer */
	const char *kty;         /* "oct-HSM", "RSA-HSM", "EC-HSM", or an unsupported one */
	const uint8_t *material; /* the key it holds */
	size_t material_len;
	enum skr_wrap_alg alg;
	const struct test_pki_cert *signer; /* default W.leaf */
	bool no_intermediate;               /* x5c = [leaf] only */
	bool bad_signature;
	bool tamper_ciphertext;
	const char *kek_kid; /* key_hsm header.kid instead of the runtime key's */
	unsigned delay_ms;   /* hold the release answer */
	const char *extra;   /* further replies for the release path before the answer */
	int extra_count;
	/* what it saw */
	char *runtime_kid;
	char *runtime;
	pthread_t thread;
	int error;
	char errmsg[SKR_ERROR_MSG_MAX];
};

static void vault_fail(struct vault *v, const char *msg)
{
	v->error = -1;
	snprintf(v->errmsg, sizeof(v->errmsg), "%s", msg);
}

/* The index of the first MAA request, waiting for it to arrive. */
static const struct test_http_request *wait_maa_request(void)
{
	for (int i = 0; i < 5000; i++) {
		size_t n = test_http_server_request_count(W.srv);

		for (size_t j = 0; j < n; j++) {
			const struct test_http_request *r = test_http_server_request(W.srv, j);

			if (strcmp(r->path, MAA_PATH) == 0)
				return r;
		}
		usleep(2000);
	}
	return NULL;
}

/* Build the §5.2 answer for the runtime key in the MAA request and queue it. */
static void *vault_thread(void *p)
{
	struct vault *v = p;
	const struct test_http_request *req = wait_maa_request();
	_cleanup_free_ char *jwk = NULL, *ct_b64 = NULL, *blob = NULL, *blob_b64 = NULL;
	_cleanup_free_ char *payload = NULL, *header = NULL, *jws = NULL, *body = NULL;
	_cleanup_free_ char *x5c_leaf = NULL, *x5c_inter = NULL;
	_cleanup_free_ uint8_t *ct = NULL;
	_cleanup_json_ json_object *rt = NULL;
	const struct test_pki_cert *signer = v->signer ? v->signer : &W.leaf;
	struct maa_request m = {0};
	struct skr_error err = {0};
	json_object *keys, *key, *kid;
	size_t ct_len;

	if (!req) {
		vault_fail(v, "no MAA request arrived");
		return NULL;
	}
	if (maa_request_parse(req->body, req->body_len, &m, &err) < 0 ||
	    json_parse((const char *)m.runtime_data, m.runtime_data_len, "runtime", &rt, &err) <
	            0 ||
	    !json_object_object_get_ex(rt, "keys", &keys) ||
	    !(key = json_object_array_get_idx(keys, 0)) ||
	    !json_object_object_get_ex(key, "kid", &kid)) {
		maa_request_clear(&m);
		vault_fail(v, "MAA request without runtime keys");
		return NULL;
	}
	v->runtime = strndup((const char *)m.runtime_data, m.runtime_data_len);
	v->runtime_kid = strdup(json_object_get_string(kid));
	maa_request_clear(&m);

	/* Like Key Vault: wrap to the first runtime key. */
	jwk = strdup(json_object_to_json_string_ext(key, JSON_C_TO_STRING_PLAIN));
	if (skr_key_wrap(jwk, strlen(jwk), v->alg, v->material, v->material_len, &ct, &ct_len,
	                 &err) < 0) {
		vault_fail(v, err.msg);
		return NULL;
	}
	if (v->tamper_ciphertext)
		ct[ct_len - 3] ^= 0x40; /* inside the AES-KWP part: the AIV check must catch it */
	ct_b64 = test_b64url(ct, ct_len);
	assert_true(
	        asprintf(&blob,
	                 "{\"schema_version\":\"1.0\",\"header\":{\"kid\":\"%s\",\"alg\":\"dir\","
	                 "\"enc\":\"%s\"},\"ciphertext\":\"%s\"}",
	                 v->kek_kid ? v->kek_kid : v->runtime_kid, skr_wrap_alg_name(v->alg),
	                 ct_b64) > 0);
	blob_b64 = test_b64url(blob, strlen(blob));
	assert_true(
	        asprintf(&payload,
	                 "{\"request\":{\"api-version\":\"7.4\",\"enc\":\"%s\",\"kid\":"
	                 "\"https://%s/keys/mykey\"},\"response\":{\"key\":{\"key\":{\"kid\":"
	                 "\"https://%s/keys/mykey/0f1e2d3c\",\"kty\":\"%s\",\"key_ops\":["
	                 "\"wrapKey\",\"unwrapKey\",\"encrypt\",\"decrypt\"],\"key_hsm\":\"%s\"},"
	                 "\"attributes\":{\"enabled\":true,\"exportable\":true},\"tags\":{}}}}",
	                 skr_wrap_alg_name(v->alg), W.vault, W.vault, v->kty, blob_b64) > 0);
	x5c_leaf = test_pki_der_b64(signer->cert);
	x5c_inter = test_pki_der_b64(W.inter.cert);
	assert_true(asprintf(&header,
	                     "{\"alg\":\"RS256\",\"kid\":\"thumb\",\"typ\":\"JWT\",\"x5c\":[\"%s\"%"
	                     "s%s%s]}",
	                     x5c_leaf, v->no_intermediate ? "" : ",\"",
	                     v->no_intermediate ? "" : x5c_inter,
	                     v->no_intermediate ? "" : "\"") > 0);
	jws = test_jws_sign(signer->key, header, payload);
	if (v->bad_signature) {
		char *sig = strrchr(jws, '.') + 10;

		*sig = *sig == 'A' ? 'B' : 'A';
	}
	assert_true(asprintf(&body, "{\"value\":\"%s\"}", jws) > 0);
	test_http_server_push(W.srv, &(struct test_http_reply){.path = RELEASE_PATH,
	                                                       .content_type = "application/json",
	                                                       .body = body,
	                                                       .delay_ms = v->delay_ms});
	return NULL;
}

/* MAA answers (after a pause), then the vault thread is started. */
static void vault_start(struct vault *v)
{
	_cleanup_free_ char *maa = NULL;

	assert_true(asprintf(&maa, "{\"token\":\"%s\"}", W.maa_token) > 0);
	test_http_server_push(W.srv, &(struct test_http_reply){.path = MAA_PATH,
	                                                       .content_type = "application/json",
	                                                       .body = maa,
	                                                       .delay_ms = MAA_DELAY_MS});
	if (!v)
		return;
	if (!v->kty)
		v->kty = "oct-HSM";
	if (!v->material) {
		v->material = W.oct;
		v->material_len = sizeof(W.oct);
	}
	assert_int_equal(pthread_create(&v->thread, NULL, vault_thread, v), 0);
}

static void vault_join(struct vault *v)
{
	pthread_join(v->thread, NULL);
	if (v->error)
		fail_msg("vault thread: %s", v->errmsg);
}

static void vault_clear(struct vault *v)
{
	free(v->runtime_kid);
	free(v->runtime);
}

static struct skr_release_request request(void)
{
	return (struct skr_release_request){
	        .maa_endpoint = W.maa,
	        .akv_endpoint = W.vault,
	        .kid = "mykey",
	        .access_token = BEARER,
	};
}

/* Requests to @path so far. */
static size_t count_path(const char *path)
{
	size_t n = 0;

	for (size_t i = 0; i < test_http_server_request_count(W.srv); i++)
		if (strcmp(test_http_server_request(W.srv, i)->path, path) == 0)
			n++;
	return n;
}

static const struct test_http_request *find_path(const char *path)
{
	for (size_t i = 0; i < test_http_server_request_count(W.srv); i++)
		if (strcmp(test_http_server_request(W.srv, i)->path, path) == 0)
			return test_http_server_request(W.srv, i);
	return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Success
 * ------------------------------------------------------------------------------------------- */

static void assert_released(const struct skr_key *k, enum skr_key_type type, const uint8_t *mat,
                            size_t len)
{
	assert_int_equal(k->type, type);
	assert_int_equal(k->material->len, len);
	assert_memory_equal(k->material->data, mat, len);
	assert_non_null(k->kid);
	assert_true(strstr(k->kid, "/keys/mykey/0f1e2d3c") != NULL);
	assert_int_equal(k->n_key_ops, 4);
	assert_string_equal(k->key_ops[0], "wrapKey");
	assert_string_equal(k->key_ops[3], "decrypt");
}

static void test_release_oct(void **state)
{
	struct skr_release_request req = request();
	struct vault v = {0};
	struct skr_key *k = NULL;
	struct skr_error err = {0};
	const struct test_http_request *rel, *maa;
	struct maa_request m = {0};
	struct snp_report report;
	struct skr_release_info info;
	uint8_t expect[64];
	_cleanup_free_ char *target = NULL, *sig = NULL;

	vault_start(&v);
	test_log_capture_start(LOG_LEVEL_TRACE);
	if (skr_release_key_ex(W.attester, &req, &k, &info, &err) < 0) {
		test_log_capture_stop();
		fail_msg("skr_release_key: %s", err.msg);
	}
	test_log_capture_stop();
	vault_join(&v);
	assert_released(k, SKR_KEY_OCT, W.oct, sizeof(W.oct));

	/* The report binds the runtime data, which is the KEK's JWK set (§4.3, §7.5). */
	maa = find_path(MAA_PATH);
	assert_int_equal(maa_request_parse(maa->body, maa->body_len, &m, &err), 0);
	assert_int_equal(snp_report_parse(m.report, m.report_len, &report, &err), 0);
	skr_report_data_for(m.runtime_data, m.runtime_data_len, expect);
	assert_memory_equal(report.report_data, expect, 64);

	/* The audit information: token jti, report hash, the released key's id and fingerprint. */
	{
		char fp[SKR_FINGERPRINT_STR_SIZE], hex[65];
		uint8_t md[32];

		assert_string_equal(info.jti, "maa-jti-5");
		SHA256(m.report, m.report_len, md);
		hex_encode(md, sizeof(md), hex);
		assert_string_equal(info.report_sha256, hex);
		skr_key_fingerprint(W.oct, sizeof(W.oct), fp);
		assert_string_equal(info.key_fingerprint, fp);
		assert_string_equal(info.kid, k->kid);
	}
	assert_non_null(strstr(v.runtime, "\"key_ops\":[\"encrypt\"]"));
	assert_non_null(strstr(v.runtime, "\"kty\":\"RSA\""));
	maa_request_clear(&m);

	/* The release call: §5.2 path, bearer, {"target": token} and no enc by default. */
	rel = find_path(RELEASE_PATH);
	assert_non_null(rel);
	assert_string_equal(rel->method, "POST");
	assert_string_equal(rel->target, RELEASE_PATH "?api-version=7.4");
	assert_string_equal(test_http_request_header(rel, "Authorization"), "Bearer " BEARER);
	assert_true(asprintf(&target, "{\"target\":\"%s\"}", W.maa_token) > 0);
	assert_string_equal(rel->body, target);

	/* Nothing secret in the log, even at trace: token signature, bearer, key bytes. */
	sig = strdup(strrchr(W.maa_token, '.') + 1);
	assert_non_null(test_log_captured());
	assert_null(strstr(test_log_captured(), sig));
	assert_null(strstr(test_log_captured(), BEARER));
	{
		char hex[65];

		hex_encode(W.oct, sizeof(W.oct), hex);
		assert_null(strstr(test_log_captured(), hex));
	}
	skr_key_free(k);
	vault_clear(&v);
}

static void test_release_rsa_ec(void **state)
{
	static const struct {
		const char *kty;
		enum skr_key_type type;
		enum skr_wrap_alg alg;
		const char *enc;
	} cases[] = {
	        {"RSA-HSM", SKR_KEY_RSA, SKR_WRAP_RSA_AES, NULL},
	        {"EC-HSM", SKR_KEY_EC, SKR_WRAP_RSA_AES_256, "RSA_AES_KEY_WRAP_256"},
	        {"RSA", SKR_KEY_RSA, SKR_WRAP_RSA_AES_384, "RSA_AES_KEY_WRAP_384"},
	        {"oct", SKR_KEY_OCT, SKR_WRAP_RSA_AES_256, "RSA_AES_KEY_WRAP_256"},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct skr_release_request req = request();
		struct vault v = {.kty = cases[i].kty, .alg = cases[i].alg};
		struct skr_key *k = NULL;
		struct skr_error err = {0};
		const uint8_t *mat = W.oct;
		size_t len = sizeof(W.oct);
		_cleanup_free_ char *body = NULL;

		if (cases[i].type == SKR_KEY_RSA) {
			mat = W.rsa_der;
			len = W.rsa_der_len;
		} else if (cases[i].type == SKR_KEY_EC) {
			mat = W.ec_der;
			len = W.ec_der_len;
		}
		v.material = mat;
		v.material_len = len;
		req.enc = cases[i].enc;
		test_http_server_reset(W.srv);
		vault_start(&v);
		if (skr_release_key(W.attester, &req, &k, &err) < 0)
			fail_msg("%s: %s", cases[i].kty, err.msg);
		vault_join(&v);
		assert_released(k, cases[i].type, mat, len);
		/* enc is sent when asked for. */
		if (cases[i].enc) {
			assert_true(asprintf(&body, "\"enc\":\"%s\"}", cases[i].enc) > 0);
			assert_non_null(strstr(find_path(RELEASE_PATH)->body, body));
		}
		skr_key_free(k);
		vault_clear(&v);
	}
}

/* Every release gets a wrapping key of its own (pool or not). */
static void test_fresh_kek(void **state)
{
	struct skr_attester *inline_kek = make_attester(5000, 1, -1);
	struct skr_attester *attesters[] = {W.attester, inline_kek};
	char *kids[4] = {0};

	for (size_t i = 0; i < 4; i++) {
		struct skr_release_request req = request();
		struct vault v = {0};
		struct skr_key *k = NULL;
		struct skr_error err = {0};

		test_http_server_reset(W.srv);
		vault_start(&v);
		if (skr_release_key(attesters[i / 2], &req, &k, &err) < 0)
			fail_msg("release %zu: %s", i, err.msg);
		vault_join(&v);
		kids[i] = strdup(v.runtime_kid);
		skr_key_free(k);
		vault_clear(&v);
	}
	for (size_t i = 0; i < 4; i++)
		for (size_t j = i + 1; j < 4; j++)
			assert_string_not_equal(kids[i], kids[j]);
	for (size_t i = 0; i < 4; i++)
		free(kids[i]);
	skr_attester_free(inline_kek);
}

/* No access_token: the bearer comes from the identity (IMDS), for the vault's audience. */
static void test_bearer_from_identity(void **state)
{
	struct skr_release_request req = request();
	struct vault v = {0};
	struct skr_key *k = NULL;
	struct skr_error err = {0};
	const struct test_http_request *imds;
	_cleanup_free_ char *imds_body = NULL;

	req.access_token = NULL;
	assert_true(asprintf(&imds_body,
	                     "{\"access_token\":\"imds-token\",\"expires_on\":\"%lld\","
	                     "\"token_type\":\"Bearer\"}",
	                     (long long)time(NULL) + 3600) > 0);
	test_http_server_reply(W.srv, IMDS_PATH, 200, "application/json", imds_body);
	vault_start(&v);
	if (skr_release_key(W.attester, &req, &k, &err) < 0)
		fail_msg("skr_release_key: %s", err.msg);
	vault_join(&v);
	imds = find_path(IMDS_PATH);
	assert_non_null(imds);
	assert_non_null(strstr(imds->target, "resource=https%3A%2F%2Fvault.azure.net"));
	assert_string_equal(test_http_request_header(imds, "Metadata"), "true");
	assert_string_equal(test_http_request_header(find_path(RELEASE_PATH), "Authorization"),
	                    "Bearer imds-token");
	skr_key_free(k);
	vault_clear(&v);

	/* The identity failing is the "identity" step. */
	test_http_server_reset(W.srv);
	{
		struct skr_attester *a = make_attester(5000, 1, -1);
		struct skr_key *k2 = NULL;

		test_http_server_reply(W.srv, IMDS_PATH, 400, "application/json",
		                       "{\"error\":\"invalid_request\",\"error_description\":"
		                       "\"Identity not found\"}");
		vault_start(NULL);
		skr_error_clear(&err);
		assert_int_equal(skr_release_key(a, &req, &k2, &err), -EACCES);
		assert_null(k2);
		assert_true(strncmp(err.msg, "identity: ", 10) == 0);
		assert_non_null(strstr(err.msg, "Identity not found"));
		assert_int_equal(count_path(RELEASE_PATH), 0);
		skr_attester_free(a);
	}
}

/* ---------------------------------------------------------------------------------------------
 * Vault refusals
 * ------------------------------------------------------------------------------------------- */

static void test_status_errors(void **state)
{
	static const struct {
		unsigned status;
		const char *body;
		int expect;
		const char *msg;
		size_t attempts;
	} cases[] = {
	        {400, "{\"error\":{\"code\":\"BadParameter\",\"message\":\"Invalid enc\"}}",
	         -EINVAL, "release: the vault https://localhost:", 1},
	        {401,
	         "{\"error\":{\"code\":\"Unauthorized\",\"message\":\"AKV10022: Invalid "
	         "audience\"}}",
	         -EACCES,
	         "release: the bearer token was refused: check the identity has the release "
	         "permission",
	         1},
	        {404,
	         "{\"error\":{\"code\":\"KeyNotFound\",\"message\":\"A key with (name/id) mykey "
	         "was not found in this key vault.\"}}",
	         -ENOENT, "release: key \"mykey\" not found in https://localhost:", 1},
	        {503, "{\"error\":{\"code\":\"ServiceUnavailable\",\"message\":\"busy\"}}", -EIO,
	         "failed with HTTP 503: ServiceUnavailable: busy (after retries)", 3},
	        {429, "{\"error\":{\"code\":\"Throttled\",\"message\":\"slow down\"}}", -EAGAIN,
	         "is throttling requests (HTTP 429: Throttled: slow down)", 3},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct skr_release_request req = request();
		struct skr_key *k = NULL;
		struct skr_error err = {0};

		test_http_server_reset(W.srv);
		vault_start(NULL);
		test_http_server_push(W.srv,
		                      &(struct test_http_reply){.path = RELEASE_PATH,
		                                                .status = cases[i].status,
		                                                .content_type = "application/json",
		                                                .headers = "Retry-After: 0",
		                                                .body = cases[i].body,
		                                                .sticky = true});
		assert_int_equal(skr_release_key(W.attester, &req, &k, &err), cases[i].expect);
		assert_null(k);
		if (!strstr(err.msg, cases[i].msg))
			fail_msg("HTTP %u: '%s' lacks '%s'", cases[i].status, err.msg,
			         cases[i].msg);
		/* Retried only when it may help, and boundedly. */
		assert_int_equal(count_path(RELEASE_PATH), cases[i].attempts);
		assert_null(strstr(err.msg, BEARER));
	}
}

/* A denial explained with the key's own policy (fetched with the same bearer). */
static void test_403_explained(void **state)
{
	struct skr_release_request req = request();
	struct skr_key *k = NULL;
	struct skr_error err = {0};
	_cleanup_free_ char *policy = NULL, *policy_b64 = NULL, *key_body = NULL;
	const struct test_http_request *get;

	assert_true(asprintf(&policy,
	                     "{\"version\":\"1.0.0\",\"anyOf\":[{\"authority\":\"%s\",\"allOf\":["
	                     "{\"claim\":\"x-ms-sevsnpvm-is-debuggable\",\"equals\":\"false\"},"
	                     "{\"claim\":\"x-ms-sevsnpvm-hostdata\",\"equals\":\"%064d\"}]}]}",
	                     W.issuer, 0) > 0);
	assert_int_equal(b64_encode(policy, strlen(policy), B64_URL_NOPAD, &policy_b64), 0);
	assert_true(
	        asprintf(&key_body,
	                 "{\"key\":{\"kid\":\"https://%s/keys/mykey/0f1e\",\"kty\":\"oct-HSM\"},"
	                 "\"release_policy\":{\"contentType\":\"application/json; charset=utf-8\","
	                 "\"data\":\"%s\",\"immutable\":false}}",
	                 W.vault, policy_b64) > 0);
	vault_start(NULL);
	test_http_server_reply(
	        W.srv, RELEASE_PATH, 403, "application/json",
	        "{\"error\":{\"code\":\"Forbidden\",\"message\":\"Target environment "
	        "attestation statement cannot be verified.\"}}");
	test_http_server_reply(W.srv, KEY_PATH, 200, "application/json", key_body);
	assert_int_equal(skr_release_key(W.attester, &req, &k, &err), -EACCES);
	assert_null(k);
	if (!strstr(err.msg, "release: release denied by the vault: Target environment "
	                     "attestation statement cannot be verified.; policy: claim "
	                     "x-ms-sevsnpvm-hostdata is"))
		fail_msg("message: %s", err.msg);
	assert_non_null(strstr(err.msg, "but the policy requires"));
	get = find_path(KEY_PATH);
	assert_non_null(get);
	assert_string_equal(get->method, "GET");
	assert_string_equal(get->target, KEY_PATH "?api-version=7.4");
	assert_string_equal(test_http_request_header(get, "Authorization"), "Bearer " BEARER);

	/* The policy cannot be read: the vault's reason still comes through. */
	test_http_server_reset(W.srv);
	vault_start(NULL);
	test_http_server_reply(W.srv, RELEASE_PATH, 403, "application/json",
	                       "{\"error\":{\"code\":\"Forbidden\",\"message\":\"denied\"}}");
	test_http_server_reply(W.srv, KEY_PATH, 403, "application/json",
	                       "{\"error\":{\"code\":\"Forbidden\",\"message\":\"no get "
	                       "permission\"}}");
	skr_error_clear(&err);
	assert_int_equal(skr_release_key(W.attester, &req, &k, &err), -EACCES);
	assert_non_null(strstr(err.msg, "release denied by the vault: denied; the key's release "
	                                "policy could not be fetched: "));
	assert_non_null(strstr(err.msg, "no get permission"));
}

/* 429 with Retry-After, then the real answer: the release POST goes through the retrying client. */
static void test_429_then_success(void **state)
{
	struct skr_release_request req = request();
	struct vault v = {0};
	struct skr_key *k = NULL;
	struct skr_error err = {0};

	vault_start(NULL);
	test_http_server_push(W.srv, &(struct test_http_reply){.path = RELEASE_PATH,
	                                                       .status = 429,
	                                                       .headers = "Retry-After: 1"});
	/* The MAA reply is queued by vault_start(NULL) already: start only the thread. */
	v.kty = "oct-HSM";
	v.material = W.oct;
	v.material_len = sizeof(W.oct);
	assert_int_equal(pthread_create(&v.thread, NULL, vault_thread, &v), 0);
	if (skr_release_key(W.attester, &req, &k, &err) < 0)
		fail_msg("skr_release_key: %s", err.msg);
	vault_join(&v);
	assert_released(k, SKR_KEY_OCT, W.oct, sizeof(W.oct));
	assert_int_equal(count_path(RELEASE_PATH), 2);
	skr_key_free(k);
	vault_clear(&v);
}

static void test_timeout(void **state)
{
	struct skr_attester *a = make_attester(800, 1, -1);
	struct skr_release_request req = request();
	struct skr_key *k = NULL;
	struct skr_error err = {0};

	vault_start(NULL);
	test_http_server_push(W.srv, &(struct test_http_reply){
	                                     .path = RELEASE_PATH, .body = "{}", .delay_ms = 2000});
	/* MAA answers after MAA_DELAY_MS < 800 ms; the vault does not answer in time. */
	assert_int_equal(skr_release_key(a, &req, &k, &err), -ETIMEDOUT);
	assert_true(strncmp(err.msg, "release: POST https://localhost:", 32) == 0);
	assert_null(k);
	skr_attester_free(a);
}

/* ---------------------------------------------------------------------------------------------
 * Bad answers
 * ------------------------------------------------------------------------------------------- */

static void test_bad_answers(void **state)
{
	struct {
		const char *name;
		struct vault v;
		int expect;
		const char *msg;
	} cases[] = {
	        {"bad signature",
	         {.bad_signature = true},
	         -EBADMSG,
	         "release response: the JWS signature does not verify with its x5c[0] certificate"},
	        {"untrusted chain",
	         {.signer = &W.rogue_leaf, .no_intermediate = true},
	         -EPERM,
	         "release response: the JWS certificate chain is not trusted: "},
	        {"missing intermediate",
	         {.no_intermediate = true},
	         -EPERM,
	         "release response: the JWS certificate chain is not trusted: "},
	        {"wrong host name",
	         {.signer = &W.other_host},
	         -EPERM,
	         "release response: the JWS signing certificate (/CN=vault.example.net) is not "
	         "issued for the vault's host localhost"},
	        {"AIV failure",
	         {.tamper_ciphertext = true},
	         -EBADMSG,
	         "unwrap: key unwrap failed: integrity check (RFC 5649 AIV) did not pass"},
	        {"unsupported key type",
	         {.kty = "OKP"},
	         -ENOTSUP,
	         "release response: released key type OKP is not supported"},
	        /* A forged answer is refused as forged, never judged on what it claims. */
	        {"forged: bad signature, unsupported key type",
	         {.kty = "OKP", .bad_signature = true},
	         -EBADMSG,
	         "release response: the JWS signature does not verify with its x5c[0] certificate"},
	        {"forged: untrusted chain, unsupported key type",
	         {.kty = "OKP", .signer = &W.rogue_leaf, .no_intermediate = true},
	         -EPERM,
	         "release response: the JWS certificate chain is not trusted: "},
	        {"KEK kid mismatch", {.kek_kid = "some-other-key"}, -EPROTO, "unwrap: "},
	        {"material is not the announced type", {.kty = "RSA-HSM"}, -EPROTO, "unwrap: "},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct skr_release_request req = request();
		struct skr_key *k = NULL;
		struct skr_error err = {0};
		int r;

		struct skr_release_info info;

		test_http_server_reset(W.srv);
		vault_start(&cases[i].v);
		r = skr_release_key_ex(W.attester, &req, &k, &info, &err);
		vault_join(&cases[i].v);
		vault_clear(&cases[i].v);
		if (r != cases[i].expect || !strstr(err.msg, cases[i].msg))
			fail_msg("%s: got %d '%s', expected %d '%s'", cases[i].name, r, err.msg,
			         cases[i].expect, cases[i].msg);
		assert_null(k);
		/* Known on failure too: the attestation happened; no key was released. */
		assert_string_equal(info.jti, "maa-jti-5");
		assert_int_equal(strlen(info.report_sha256), 64);
		assert_string_equal(info.key_fingerprint, "");
		/* Never any key byte in a message. */
		{
			char hex[65];

			hex_encode(W.oct, 32, hex);
			assert_null(strstr(err.msg, hex));
		}
	}

	/* Not JSON, no value, not a JWS. */
	static const char *const bodies[] = {"oops", "{\"val\":1}", "{\"value\":\"a.b\"}"};

	for (size_t i = 0; i < ELEMENTSOF(bodies); i++) {
		struct skr_release_request req = request();
		struct skr_key *k = NULL;
		struct skr_error err = {0};

		test_http_server_reset(W.srv);
		vault_start(NULL);
		test_http_server_reply(W.srv, RELEASE_PATH, 200, "application/json", bodies[i]);
		assert_int_equal(skr_release_key(W.attester, &req, &k, &err), -EPROTO);
		assert_true(strncmp(err.msg, "release response: ", 18) == 0);
	}
}

/* {"value": JWS} whose header's x5c is [@der]; payload minimal, signature not checked here. */
static char *answer_with_x5c(const uint8_t *der, size_t len)
{
	static const char payload[] =
	        "{\"response\":{\"key\":{\"key\":{\"kty\":\"oct-HSM\",\"key_hsm\":\"AA\"}}}}";
	_cleanup_free_ char *x5c = NULL, *header = NULL, *h64 = NULL, *p64 = NULL;
	char *body;

	assert_int_equal(b64_encode(der, len, B64_STD, &x5c), 0);
	assert_true(asprintf(&header, "{\"alg\":\"RS256\",\"x5c\":[\"%s\"]}", x5c) > 0);
	h64 = test_b64url(header, strlen(header));
	p64 = test_b64url(payload, strlen(payload));
	assert_true(asprintf(&body, "{\"value\":\"%s.%s.c2ln\"}", h64, p64) > 0);
	return body;
}

/* x5c[0] of the parsed answer is exactly the certificate @der encodes. */
static void assert_parsed_x5c(const uint8_t *der, size_t len)
{
	_cleanup_free_ char *body = answer_with_x5c(der, len);
	_cleanup_free_ uint8_t *got = NULL;
	struct release_answer ans;
	struct skr_error err = {0};
	int got_len;

	if (release_answer_parse(body, strlen(body), &ans, &err) < 0)
		fail_msg("release_answer_parse: %s", err.msg);
	assert_int_equal(sk_X509_num(ans.x5c), 1);
	got_len = i2d_X509(sk_X509_value(ans.x5c, 0), &got);
	assert_int_equal(got_len, (int)len);
	assert_memory_equal(got, der, len);
	release_answer_clear(&ans);
}

/*
 * Parsed x5c certificates are reused by their exact DER bytes: the same bytes give the same
 * certificate, and bytes differing in one place (here the signature's last byte, which still
 * parses) are never answered with the certificate parsed before. That the signature and chain
 * of a reused certificate are still checked is test_bad_answers (its leaf is parsed before).
 */
static void test_x5c_reuse_by_der(void **state)
{
	_cleanup_free_ uint8_t *leaf = NULL, *other = NULL, *tampered = NULL;
	int leaf_len, other_len;

	leaf_len = i2d_X509(W.leaf.cert, &leaf);
	other_len = i2d_X509(W.other_host.cert, &other);
	assert_true(leaf_len > 0 && other_len > 0);
	tampered = malloc((size_t)leaf_len);
	assert_non_null(tampered);
	memcpy(tampered, leaf, (size_t)leaf_len);
	tampered[leaf_len - 1] ^= 0x01;

	for (int round = 0; round < 2; round++) {
		assert_parsed_x5c(leaf, (size_t)leaf_len);
		assert_parsed_x5c(tampered, (size_t)leaf_len);
		assert_parsed_x5c(other, (size_t)other_len);
	}
	/* More distinct certificates than the cache holds: each still parsed as itself. */
	for (int i = 0; i < 20; i++) {
		tampered[leaf_len - 1] = (uint8_t)i;
		assert_parsed_x5c(tampered, (size_t)leaf_len);
		assert_parsed_x5c(leaf, (size_t)leaf_len);
	}
}

/* Bad requests fail before the device or the network is used. */
static void test_bad_requests(void **state)
{
	static const struct {
		const char *maa, *akv, *kid, *enc;
		const char *msg;
	} cases[] = {
	        {"m", "http://localhost:1", "k", NULL, "must use https://"},
	        {"m", "vault.example/keys", "k", NULL, "without path"},
	        {"m", "vault.example", "../secrets/x", NULL, "is not a key name"},
	        {"m", "vault.example", "k", "AES", "enc \"AES\""},
	        {"", "vault.example", "k", NULL, "maa_endpoint is empty"},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct skr_release_request req = {cases[i].maa, cases[i].akv, cases[i].kid,
		                                  BEARER,       cases[i].enc, NULL};
		struct skr_key *k = NULL;
		struct skr_error err = {0};

		assert_int_equal(skr_release_key(W.attester, &req, &k, &err), -EINVAL);
		if (!strstr(err.msg, cases[i].msg))
			fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].msg);
	}
	assert_int_equal(test_http_server_request_count(W.srv), 0);

	/* MAA refusing is the "attest" step. */
	{
		struct skr_release_request req = request();
		struct skr_key *k = NULL;
		struct skr_error err = {0};

		test_http_server_reply(
		        W.srv, MAA_PATH, 400, "application/json",
		        "{\"error\":{\"code\":\"InvalidParameter\",\"message\":\"bad "
		        "report\"}}");
		assert_int_equal(skr_release_key(W.attester, &req, &k, &err), -EACCES);
		assert_true(strncmp(err.msg, "attest: ", 8) == 0);
		assert_int_equal(count_path(RELEASE_PATH), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup(test_release_oct, reset),
	        cmocka_unit_test_setup(test_release_rsa_ec, reset),
	        cmocka_unit_test_setup(test_fresh_kek, reset),
	        cmocka_unit_test_setup(test_bearer_from_identity, reset),
	        cmocka_unit_test_setup(test_status_errors, reset),
	        cmocka_unit_test_setup(test_403_explained, reset),
	        cmocka_unit_test_setup(test_429_then_success, reset),
	        cmocka_unit_test_setup(test_timeout, reset),
	        cmocka_unit_test_setup(test_bad_answers, reset),
	        cmocka_unit_test_setup(test_x5c_reuse_by_der, reset),
	        cmocka_unit_test_setup(test_bad_requests, reset),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
