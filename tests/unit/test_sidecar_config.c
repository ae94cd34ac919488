/* SPDX-License-Identifier: MIT */
/*
 * The sidecar's configuration (sidecar/config.c): every document shape the Go sidecar accepts,
 * in every base64 spelling we accept; each refusal's exact message; --print-config redaction;
 * endpoint allowlists; environment and command-line precedence. Built twice: once as the
 * default build (raw_key refused) and once with SIDECAR_ALLOW_RAW_KEY (sidecar_config_raw_key.c).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "b64.h"
#include "cleanup.h"
#include "json_util.h"
#include "log.h"
#include "ossl.h"
/* By path: the build root has a config.h of its own (PROJECT_VERSION). */
#include "../../sidecar/config.h"

/* Values that must never appear in output, logs or errors. */
#define SECRET_TOKEN "eyJTOKENSECRET.eyJ0b2tlbnBheWxvYWQ.c2lnbmF0dXJlU0VDUkVU"
#define SECRET_RAW "5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7"
#define SECRET_SAS "sig=SASSIGNATURESECRET%2Bxyz"

#define AKS_SAMPLE                                                                                 \
	"{\"certcache\":{\"endpoint_type\":\"LocalTHIM\",\"endpoint\":\"169.254.169.254/metadata/" \
	"THIM/amd/certification\"}}"

/* ---------------------------------------------------------------------------------------------
 * Log capture
 * ------------------------------------------------------------------------------------------- */

static char logbuf[16384];
static int n_warnings;

static void capture(enum log_level level, const char *msg, void *userdata)
{
	size_t used = strlen(logbuf);

	(void)userdata;
	if (level == LOG_LEVEL_WARN)
		n_warnings++;
	snprintf(logbuf + used, sizeof(logbuf) - used, "%s\n", msg);
}

static void log_reset(void)
{
	logbuf[0] = '\0';
	n_warnings = 0;
}

static int setup(void **state)
{
	(void)state;
	log_reset();
	log_set_level(LOG_LEVEL_TRACE);
	log_set_sink(capture, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	/* Whatever a test did, no secret reached the log. */
	assert_null(strstr(logbuf, SECRET_TOKEN));
	assert_null(strstr(logbuf, SECRET_RAW));
	assert_null(strstr(logbuf, "SASSIGNATURESECRET"));
	log_set_sink(NULL, NULL);
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Encodings
 * ------------------------------------------------------------------------------------------- */

enum spelling {
	SPELL_STD,       /* what the Go scripts produce: base64 -w0 */
	SPELL_URL_NOPAD, /* URL-safe, no padding */
	SPELL_NEWLINE,   /* a YAML block scalar: trailing newline */
	SPELL_WRAPPED,   /* `base64` without -w0: lines of 76 characters */
	SPELL_SPACES,    /* surrounding white space */
	SPELL_COUNT,
};

static char *encode(const char *json, enum spelling sp)
{
	_cleanup_free_ char *b = NULL;
	char *out;
	size_t n, o = 0;

	assert_int_equal(
	        b64_encode(json, strlen(json), sp == SPELL_URL_NOPAD ? B64_URL_NOPAD : B64_STD, &b),
	        0);
	n = strlen(b);
	out = malloc(n + n / 76 + 8);
	assert_non_null(out);
	if (sp == SPELL_SPACES) {
		out[o++] = ' ';
		out[o++] = '\t';
	}
	for (size_t i = 0; i < n; i++) {
		if (sp == SPELL_WRAPPED && i > 0 && i % 76 == 0)
			out[o++] = '\n';
		out[o++] = b[i];
	}
	if (sp == SPELL_NEWLINE || sp == SPELL_WRAPPED || sp == SPELL_SPACES)
		out[o++] = '\n';
	if (sp == SPELL_SPACES)
		out[o++] = ' ';
	out[o] = '\0';
	return out;
}

static int parse_skr(const char *json, struct sidecar_config *c, struct skr_error *err)
{
	_cleanup_free_ char *b = encode(json, SPELL_STD);

	return sidecar_config_parse_skr_args(b, strlen(b), c, err);
}

static int parse_encfs(const char *json, struct sidecar_config *c, struct skr_error *err)
{
	_cleanup_free_ char *b = encode(json, SPELL_STD);

	return sidecar_config_parse_encfs_args(b, strlen(b), c, err);
}

/* ---------------------------------------------------------------------------------------------
 * Accepted documents
 * ------------------------------------------------------------------------------------------- */

#define FS_KEY(kid)                                                                                \
	"\"key\":{\"kid\":\"" kid "\",\"authority\":{\"endpoint\":\"sharedeus2.eus2.attest.azure." \
	"net\"},\"akv\":{\"endpoint\":\"myvault.vault.azure.net\"}}"

#define ENCFS_TWO                                                                                  \
	"{\"azure_info\":{\"certcache\":{\"endpoint_type\":\"LocalTHIM\",\"endpoint\":\"169."      \
	"254.169.254/metadata/THIM/amd/certification\"},\"identity\":{\"client_id\":\"client-"     \
	"guid\"}},\"azure_filesystems\":[{\"mount_point\":\"/mnt/remote/share\",\"azure_url\":"    \
	"\"https://acct.blob.core.windows.net/container/encfs.img\",\"azure_url_private\":true,"   \
	"\"read_write\":true,\"key\":{\"kid\":\"EncfsKey\",\"kty\":\"RSA-HSM\",\"key_ops\":["      \
	"\"encrypt\",\"decrypt\"],\"authority\":{\"endpoint\":\"sharedeus2.eus2.attest.azure."     \
	"net\",\"api_version\":\"ignored\",\"tee_type\":\"ignored\"},\"akv\":{\"endpoint\":"       \
	"\"myvault.vault.azure.net\",\"api_version\":\"api-version=7.3\",\"bearer_token\":"        \
	"\"" SECRET_TOKEN                                                                          \
	"\"}},\"key_derivation\":{\"salt\":\"92a631483ca875aad7e2477da755d58cac3876b77d10bcdd7b"   \
	"33bfa11e7d8b8e\",\"label\":\"Model Encryption Key\"}},{\"mount_point\":\"/mnt/remote/"    \
	"models/\",\"azure_url\":\"https://acct.blob.core.windows.net/models/m.img?sv=2022-11-"    \
	"02&" SECRET_SAS                                                                           \
	"\"," FS_KEY("ModelKey") ",\"verity_root_hash\":\"4392712ba01368efdf14"                    \
	                         "b05c76f9e4df0d53664630b5d48632ed17a137f39076\"}]}"

static void check_aks(const struct sidecar_config *c)
{
	assert_int_equal(c->certcache.type, SNP_CERTCACHE_LOCAL_THIM);
	assert_string_equal(c->certcache.endpoint,
	                    "169.254.169.254/metadata/THIM/amd/certification");
	assert_int_equal(c->n_filesystems, 0);
	assert_int_equal(c->attestation_source, SNP_SOURCE_AUTO);
}

static void check_azcache(const struct sidecar_config *c)
{
	assert_int_equal(c->certcache.type, SNP_CERTCACHE_AZCACHE);
	assert_string_equal(c->certcache.endpoint, "americas.acccache.azure.net");
	assert_string_equal(c->certcache.tee_type, "SevSnpVM");
	assert_string_equal(c->certcache.api_version, "api-version=2020-10-15-preview");
	assert_string_equal(c->certcache.client_id, "clientId=ConfidentialACI");
}

/* The anchor's older sample: no endpoint_type (the Azure cache was the only kind then). */
static void check_legacy_azcache(const struct sidecar_config *c)
{
	struct skr_attest_config a;

	assert_int_equal(c->certcache.type, SNP_CERTCACHE_NONE);
	assert_string_equal(c->certcache.endpoint, "americas.acccache.azure.net");
	sidecar_config_attest(c, &a);
	assert_int_equal(a.certcache.type, SNP_CERTCACHE_AZCACHE);
}

static void check_amd(const struct sidecar_config *c)
{
	assert_int_equal(c->certcache.type, SNP_CERTCACHE_AMD);
	assert_string_equal(c->certcache.endpoint, "kdsintf.amd.com");
	assert_string_equal(c->certcache.tee_type, "Milan");
}

static void check_identity(const struct sidecar_config *c)
{
	assert_string_equal(c->identity_client_id, "9d3b4c2a-0000-4000-8000-00000000abcd");
	assert_string_equal(c->maa_user_agent, "my-app/1.0");
	assert_int_equal(c->certcache.type, SNP_CERTCACHE_NONE);
}

static void check_empty(const struct sidecar_config *c)
{
	assert_int_equal(c->certcache.type, SNP_CERTCACHE_NONE);
	assert_null(c->certcache.endpoint);
	assert_null(c->identity_client_id);
	assert_int_equal(c->n_filesystems, 0);
}

static void check_go_case(const struct sidecar_config *c)
{
	/* Go matches keys case-insensitively; the last non-null one wins. */
	assert_int_equal(c->certcache.type, SNP_CERTCACHE_LOCAL_THIM);
	assert_string_equal(c->certcache.endpoint, "second.example");
	assert_string_equal(c->identity_client_id, "abc");
}

static void check_ours(const struct sidecar_config *c)
{
	assert_int_equal(c->attestation_source, SNP_SOURCE_VIRTUAL);
	assert_string_equal(c->virtual_dir, "/var/lib/devcloud/platform");
	assert_string_equal(c->ca_bundle, "/etc/devcloud/ca.pem");
	assert_string_equal(c->imds_endpoint, "http://127.0.0.1:41000");
	assert_string_equal(c->security_context_dir, "/tmp/secctx");
	assert_string_equal(c->cert_cache_dir, "/var/cache/sidecar");
	assert_int_equal(c->timeout_ms, 5000);
	assert_string_equal(c->audit_file, "/var/log/sidecar-audit.jsonl");
	assert_int_equal(c->log_format, SIDECAR_LOG_JSON);
	assert_int_equal(c->n_allowed_maa, 2);
	assert_string_equal(c->allowed_maa[0], "127.0.0.1:8443");
	assert_string_equal(c->allowed_maa[1], "sharedeus2.eus2.attest.azure.net");
	assert_int_equal(c->n_allowed_akv, 1); /* the duplicate collapsed */
	assert_string_equal(c->allowed_akv[0], "myvault.vault.azure.net");
}

static void check_encfs_two(const struct sidecar_config *c)
{
	const struct sidecar_filesystem *a = &c->filesystems[0], *b = &c->filesystems[1];

	assert_int_equal(c->n_filesystems, 2);
	assert_string_equal(a->azure_url, "https://acct.blob.core.windows.net/container/encfs.img");
	assert_true(a->azure_url_private);
	assert_string_equal(a->mount_point, "/mnt/remote/share");
	assert_true(a->read_write);
	assert_string_equal(a->kid, "EncfsKey");
	assert_string_equal(a->kty, "RSA-HSM");
	assert_int_equal(a->n_key_ops, 2);
	assert_string_equal(a->key_ops[1], "decrypt");
	assert_string_equal(a->maa_endpoint, "sharedeus2.eus2.attest.azure.net");
	assert_string_equal(a->akv_endpoint, "myvault.vault.azure.net");
	assert_string_equal(a->akv_bearer_token, SECRET_TOKEN);
	assert_string_equal(a->kdf_salt_hex,
	                    "92a631483ca875aad7e2477da755d58cac3876b77d10bcdd7b33bfa11e7d8b8e");
	assert_string_equal(a->kdf_label, "Model Encryption Key");
	assert_null(a->raw_key_hex);

	assert_false(b->azure_url_private);
	assert_false(b->read_write);
	assert_string_equal(b->mount_point, "/mnt/remote/models"); /* trailing '/' dropped */
	assert_string_equal(b->kid, "ModelKey");
	assert_null(b->kdf_salt_hex);
	assert_string_equal(b->verity_root_hash,
	                    "4392712ba01368efdf14b05c76f9e4df0d53664630b5d48632ed17a137f39076");
	/* azure_info merged */
	assert_int_equal(c->certcache.type, SNP_CERTCACHE_LOCAL_THIM);
	assert_string_equal(c->identity_client_id, "client-guid");
}

static void check_encfs_defaults(const struct sidecar_config *c)
{
	assert_null(c->work_dir);
	assert_null(c->ready_file);
	assert_int_equal(c->on_mount_failure, SIDECAR_ON_FAILURE_EXIT);
	assert_int_equal(c->access, SIDECAR_ACCESS_FUSE);
	assert_int_equal(c->cache_block_size, 0);
	assert_int_equal(c->cache_capacity_blocks, 0);
	assert_int_equal(c->cache_readahead_blocks, 0);
}

static void check_encfs_ours(const struct sidecar_config *c)
{
	assert_int_equal(c->n_filesystems, 1);
	assert_string_equal(c->work_dir, "/run/sidecar-work"); /* trailing '/' dropped */
	assert_string_equal(c->ready_file, "/run/sidecar/ready");
	assert_int_equal(c->on_mount_failure, SIDECAR_ON_FAILURE_CONTINUE);
	assert_int_equal(c->access, SIDECAR_ACCESS_DOWNLOAD);
	assert_int_equal(c->cache_block_size, 1048576);
	assert_int_equal(c->cache_capacity_blocks, 128);
	assert_int_equal(c->cache_readahead_blocks, 16);
}

static void check_encfs_exit_fuse(const struct sidecar_config *c)
{
	assert_int_equal(c->on_mount_failure, SIDECAR_ON_FAILURE_EXIT);
	assert_int_equal(c->access, SIDECAR_ACCESS_FUSE);
	assert_int_equal(c->cache_block_size, 4096);
	assert_int_equal(c->cache_capacity_blocks, 0);
	assert_int_equal(c->cache_readahead_blocks, 32); /* half the default capacity */
}

static void check_encfs_sample(const struct sidecar_config *c)
{
	assert_int_equal(c->n_filesystems, 1);
	assert_string_equal(c->filesystems[0].mount_point, "/mnt/remote/share");
	assert_true(c->filesystems[0].read_write);
}

struct accepted {
	const char *name;
	bool encfs;
	const char *json;
	void (*check)(const struct sidecar_config *c);
	int warnings; /* warnings the parse itself logs (unknown fields) */
};

static const struct accepted accepted_cases[] = {
        {"AKS LocalTHIM sample", false, AKS_SAMPLE, check_aks, 0},
        {"AzCache", false,
         "{\"certcache\":{\"endpoint_type\":\"AzCache\",\"endpoint\":\"americas.acccache.azure."
         "net\",\"tee_type\":\"SevSnpVM\",\"api_version\":\"api-version=2020-10-15-preview\","
         "\"client_id\":\"clientId=ConfidentialACI\"}}",
         check_azcache, 0},
        {"legacy AzCache sample", false,
         "{\n   \"certcache\": {\n      \"endpoint\": \"americas.acccache.azure.net\",\n      "
         "\"tee_type\": \"SevSnpVM\",\n      \"api_version\": "
         "\"api-version=2020-10-15-preview\"\n   }      \n}",
         check_legacy_azcache, 0},
        {"AMD", false,
         "{\"certcache\":{\"endpoint_type\":\"AMD\",\"endpoint\":\"kdsintf.amd.com\","
         "\"tee_type\":\"Milan\"}}",
         check_amd, 0},
        {"identity and maaconfig", false,
         "{\"identity\":{\"client_id\":\"9d3b4c2a-0000-4000-8000-00000000abcd\"},\"maaconfig\":"
         "{\"user_agent\":\"my-app/1.0\"}}",
         check_identity, 0},
        {"empty object", false, "{}", check_empty, 0},
        {"null document", false, "null", check_empty, 0},
        {"null and empty values", false,
         "{\"certcache\":null,\"identity\":{\"client_id\":\"\"},\"maaconfig\":{\"user_agent\":"
         "null}}",
         check_empty, 0},
        {"Go key matching", false,
         "{\"CertCache\":{\"Endpoint_Type\":\"localthim\",\"endpoint\":\"first.example\","
         "\"ENDPOINT\":\"second.example\",\"Endpoint\":null},\"Identity\":{\"Client_ID\":"
         "\"abc\"}}",
         check_go_case, 0},
        {"unknown fields warn once", false,
         "{\"certcache\":{\"endpoint_type\":\"LocalTHIM\",\"endpoint\":\"169.254.169.254/"
         "metadata/THIM/amd/certification\",\"future\":1},\"new_thing\":{\"x\":[1]}}",
         check_aks, 1},
        {"our options", false,
         "{\"attestation_source\":\"virtual\",\"virtual_platform_dir\":\"/var/lib/devcloud/"
         "platform\",\"ca_bundle\":\"/etc/devcloud/ca.pem\",\"imds_endpoint\":\"http://"
         "127.0.0.1:41000\",\"security_context_dir\":\"/tmp/secctx\",\"cert_cache_dir\":\"/var/"
         "cache/sidecar\",\"timeout_ms\":5000,\"audit_file\":\"/var/log/sidecar-audit.jsonl\","
         "\"log_format\":\"json\",\"allowed_endpoints\":{\"attestation\":[\"https://127.0.0.1:"
         "8443/\",\"SharedEUS2.eus2.attest.azure.net:443\"],\"key_vault\":[\"myvault.vault."
         "azure.net\",\"https://MyVault.vault.azure.net\"]}}",
         check_ours, 0},
        {"EncfsSideCarArgs with two filesystems and azure_info", true, ENCFS_TWO, check_encfs_two,
         0},
        {"the anchor's encfs sample shape", true,
         "{\n   \"azure_filesystems\": [\n      {\n         \"mount_point\": "
         "\"/mnt/remote/share\",\n         \"azure_url\": \"https://acct.blob.core.windows.net/"
         "c/encfs.img\",\n         \"azure_url_private\": true,\n         \"read_write\": true,\n"
         "         \"key\": {\n            \"kid\": \"EncfsKey\",\n            \"kty\": "
         "\"oct-HSM\",\n            \"authority\": {\n               \"endpoint\": "
         "\"sharedeus2.eus2.attest.azure.net\"\n            },\n            \"akv\": {\n         "
         "      \"endpoint\": \"myvault.managedhsm.azure.net\"\n            }\n         },\n    "
         "     \"key_derivation\": {\n            \"salt\": \"\",\n            \"label\": \"\"\n"
         "         }\n      }\n   ]\n}",
         check_encfs_sample, 0},
        {"EncfsSideCarArgs without our options", true, ENCFS_TWO, check_encfs_defaults, 0},
        {"our EncfsSideCarArgs options", true,
         "{\"work_dir\":\"/run/sidecar-work/\",\"ready_file\":\"/run/sidecar/ready\","
         "\"on_mount_failure\":\"continue\",\"access\":\"download\",\"cache\":{"
         "\"block_size\":1048576,\"capacity_blocks\":128,\"readahead_blocks\":16},"
         "\"azure_filesystems\":[{\"azure_url\":\"https://acct.blob.core.windows.net/c/i.img\","
         "\"mount_point\":\"/mnt/remote/share\",\"key\":{\"kid\":\"k\",\"authority\":{"
         "\"endpoint\":\"m.example\"},\"akv\":{\"endpoint\":\"v.example\"}}}]}",
         check_encfs_ours, 0},
        {"our EncfsSideCarArgs options, other values", true,
         "{\"on_mount_failure\":\"exit\",\"access\":\"fuse\",\"cache\":{\"block_size\":"
         "4096,\"readahead_blocks\":32,\"capacity_blocks\":null}}",
         check_encfs_exit_fuse, 0},
};

static void test_accepted(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(accepted_cases) / sizeof(accepted_cases[0]); i++) {
		const struct accepted *t = &accepted_cases[i];

		for (int sp = 0; sp < SPELL_COUNT; sp++) {
			struct sidecar_config c = {0};
			struct skr_error err = {0};
			_cleanup_free_ char *b = encode(t->json, (enum spelling)sp);
			int r;

			log_reset();
			r = t->encfs ? sidecar_config_parse_encfs_args(b, strlen(b), &c, &err)
			             : sidecar_config_parse_skr_args(b, strlen(b), &c, &err);
			if (r != 0)
				fail_msg("%s (spelling %d): %s", t->name, sp, err.msg);
			t->check(&c);
			assert_int_equal(sidecar_config_validate(&c, &err), 0);
			assert_int_equal(n_warnings, t->warnings);
			sidecar_config_clear(&c);
		}
	}
}

static void test_unknown_fields_warning(void **state)
{
	struct sidecar_config c = {0};
	struct skr_error err = {0};

	(void)state;
	log_reset();
	assert_int_equal(
	        parse_encfs("{\"azure_info\":{\"attestation_source\":\"virtual\","
	                    "\"virtual_platform_dir\":\"/p\",\"bogus\":1},"
	                    "\"azure_filesystems\":[{\"mount_point\":\"/m\",\"azure_url\":"
	                    "\"https://a.example/i\",\"mystery\":\"VALUE-NOT-LOGGED\"," FS_KEY(
	                            "k") "}]}",
	                    &c, &err),
	        0);
	assert_int_equal(n_warnings, 1);
	/* our options are fields of azure_info too: only the unknown ones are named */
	assert_string_equal(logbuf, "EncfsSideCarArgs: ignoring unknown fields "
	                            "azure_info.bogus, azure_filesystems[0].mystery (the Go "
	                            "sidecar ignores them too; check the spelling)\n");
	assert_null(strstr(logbuf, "VALUE-NOT-LOGGED"));
	assert_int_equal(c.attestation_source, SNP_SOURCE_VIRTUAL);
	assert_string_equal(c.virtual_dir, "/p");
	sidecar_config_clear(&c);
}

/*
 * An encfs-only container group configures everything through EncfsSideCarArgs azure_info; a
 * value of ours given in both documents must agree, allowlists are the union.
 */
static void test_ours_in_azure_info(void **state)
{
	static const char *const skr = "{\"attestation_source\":\"virtual\","
	                               "\"virtual_platform_dir\":\"/p\",\"timeout_ms\":5000,"
	                               "\"allowed_endpoints\":{\"attestation\":[\"maa.one\"]}}";
	static const struct {
		const char *info;
		int expected;
		const char *message;
	} cases[] = {
	        {"{\"attestation_source\":\"virtual\",\"virtual_platform_dir\":\"/p\","
	         "\"timeout_ms\":5000,\"log_format\":\"json\","
	         "\"allowed_endpoints\":{\"attestation\":[\"maa.two\"]}}",
	         0, NULL},
	        {"{\"attestation_source\":\"sev-guest\"}", -EINVAL,
	         "EncfsSideCarArgs azure_info.attestation_source conflicts with SkrSideCarArgs "
	         "attestation_source: give it in one document or the same value in both"},
	        {"{\"virtual_platform_dir\":\"/q\"}", -EINVAL,
	         "EncfsSideCarArgs azure_info.virtual_platform_dir conflicts with SkrSideCarArgs "
	         "virtual_platform_dir: give it in one document or the same value in both"},
	        {"{\"timeout_ms\":7000}", -EINVAL,
	         "EncfsSideCarArgs azure_info.timeout_ms conflicts with SkrSideCarArgs "
	         "timeout_ms: give it in one document or the same value in both"},
	        {"{\"attestation_source\":\"tpm\"}", -EINVAL,
	         "EncfsSideCarArgs azure_info.attestation_source: unknown source 'tpm'; expected "
	         "auto, sev-guest, sev, configfs-tsm or virtual"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sidecar_config c = {0};
		struct skr_error err = {0};
		_cleanup_free_ char *encfs = NULL;

		assert_int_equal(parse_skr(skr, &c, &err), 0);
		assert_true(asprintf(&encfs, "{\"azure_info\":%s,\"azure_filesystems\":[]}",
		                     cases[i].info) > 0);
		assert_int_equal(parse_encfs(encfs, &c, &err), cases[i].expected);
		if (cases[i].message)
			assert_string_equal(err.msg, cases[i].message);
		else {
			assert_int_equal(c.attestation_source, SNP_SOURCE_VIRTUAL);
			assert_int_equal(c.log_format, SIDECAR_LOG_JSON);
			assert_int_equal(c.n_allowed_maa, 2);
		}
		sidecar_config_clear(&c);
	}
}

/* Both documents name certcache/identity: equal values merge, different ones are refused. */
static void test_merge(void **state)
{
	struct sidecar_config c = {0};
	struct skr_error err = {0};

	(void)state;
	assert_int_equal(parse_skr(AKS_SAMPLE, &c, &err), 0);
	assert_int_equal(parse_encfs("{\"azure_info\":" AKS_SAMPLE "}", &c, &err), 0);
	assert_int_equal(c.certcache.type, SNP_CERTCACHE_LOCAL_THIM);
	assert_int_equal(parse_skr("{}", &c, &err), -EINVAL);
	assert_string_equal(err.msg, "SkrSideCarArgs given twice: expected one document");
	sidecar_config_clear(&c);

	skr_error_clear(&err);
	assert_int_equal(
	        parse_encfs("{\"azure_info\":{\"certcache\":{\"endpoint\":\"a.example\"}}}", &c,
	                    &err),
	        0);
	assert_int_equal(parse_skr("{\"certcache\":{\"endpoint\":\"b.example\"}}", &c, &err),
	                 -EINVAL);
	assert_string_equal(err.msg,
	                    "SkrSideCarArgs certcache.endpoint conflicts with EncfsSideCarArgs "
	                    "azure_info.certcache.endpoint: give it in one document or the same "
	                    "value in both");
	sidecar_config_clear(&c);

	skr_error_clear(&err);
	assert_int_equal(parse_skr("{\"identity\":{\"client_id\":\"one\"},\"certcache\":{"
	                           "\"endpoint_type\":\"AMD\"}}",
	                           &c, &err),
	                 0);
	assert_int_equal(parse_encfs("{\"azure_info\":{\"certcache\":{\"endpoint_type\":"
	                             "\"LocalTHIM\"}}}",
	                             &c, &err),
	                 -EINVAL);
	assert_string_equal(
	        err.msg, "EncfsSideCarArgs azure_info.certcache.endpoint_type conflicts with "
	                 "SkrSideCarArgs certcache.endpoint_type: give it in one document or the "
	                 "same value in both");
	sidecar_config_clear(&c);

	skr_error_clear(&err);
	assert_int_equal(parse_skr("{\"identity\":{\"client_id\":\"one\"}}", &c, &err), 0);
	assert_int_equal(
	        parse_encfs("{\"azure_info\":{\"identity\":{\"client_id\":\"two\"}}}", &c, &err),
	        -EINVAL);
	assert_string_equal(
	        err.msg, "EncfsSideCarArgs azure_info.identity.client_id conflicts with "
	                 "SkrSideCarArgs identity.client_id: give it in one document or the same "
	                 "value in both");
	sidecar_config_clear(&c);
}

/* ---------------------------------------------------------------------------------------------
 * Refusals: one line naming the field and the expected form
 * ------------------------------------------------------------------------------------------- */

enum build_only {
	ANY_BUILD,
	DEFAULT_BUILD, /* raw_key refused */
	RAW_KEY_BUILD, /* raw_key accepted */
};

struct refused {
	bool encfs;
	bool raw; /* input is the base64 text itself, not JSON to encode */
	const char *input;
	const char *msg;
	enum build_only only;
	bool at_validate; /* parse succeeds, sidecar_config_validate() refuses */
};

#define FS(body) "{\"azure_filesystems\":[" body "]}"
#define FS0_URL "\"azure_url\":\"https://acct.blob.core.windows.net/c/i.img\""
#define FS_OK(mount) "{" FS0_URL ",\"mount_point\":\"" mount "\"," FS_KEY("k") "}"
#define E0 "EncfsSideCarArgs azure_filesystems[0]"
#define MOUNT_FORM                                                                                 \
	": expected an absolute path without '.', '..' or '//' components, such as "               \
	"/mnt/remote/share"
#define RAW64 "\"raw_key\":\"" SECRET_RAW "\""

static const struct refused refused_cases[] = {
        /* base64 */
        {false, true, "eyJh%GVmIn0=",
         "SkrSideCarArgs is not base64: a character outside the base64 alphabet at offset 4 "
         "(line breaks not counted); expected standard or URL-safe base64 of a JSON document",
         ANY_BUILD, false},
        {false, true, "e30=e30=",
         "SkrSideCarArgs is not base64: data after the '=' padding at offset 4 (line breaks not "
         "counted); expected standard or URL-safe base64 of a JSON document",
         ANY_BUILD, false},
        {true, true, "ab+c-d==",
         "EncfsSideCarArgs is not base64: it mixes the standard (+/) and URL-safe (-_) "
         "alphabets",
         ANY_BUILD, false},
        {false, true, "e",
         "SkrSideCarArgs is not base64: wrong length or padding (was the value cut short?)",
         ANY_BUILD, false},
        {false, true, "e3",
         "SkrSideCarArgs is not base64: wrong length or padding (was the value cut short?)",
         ANY_BUILD, false},
        {false, true, " \n\t\n", "SkrSideCarArgs is empty: expected base64 of a JSON document",
         ANY_BUILD, false},
        {false, true, "eyJh IjoxfQ==",
         "SkrSideCarArgs is not base64: a character outside the base64 alphabet at offset 4 "
         "(line breaks not counted); expected standard or URL-safe base64 of a JSON document",
         ANY_BUILD, false},
        /* JSON */
        {false, false, "{\"certcache\":",
         "SkrSideCarArgs is not valid JSON: unexpected end of data", ANY_BUILD, false},
        {false, false, "{} {}", "SkrSideCarArgs is not valid JSON: unexpected character", ANY_BUILD,
         false},
        {false, false, "{\"certcache\":tru}", "SkrSideCarArgs is not valid JSON: boolean expected",
         ANY_BUILD, false},
        {false, false, "[]", "SkrSideCarArgs: expected a JSON object at the top level", ANY_BUILD,
         false},
        {true, false, "\"x\"", "EncfsSideCarArgs: expected a JSON object at the top level",
         ANY_BUILD, false},
        /* types */
        {false, false, "{\"certcache\":\"LocalTHIM\"}",
         "SkrSideCarArgs certcache: expected a JSON object", ANY_BUILD, false},
        {false, false, "{\"certcache\":{\"endpoint\":42}}",
         "SkrSideCarArgs certcache.endpoint: expected a string", ANY_BUILD, false},
        {false, false, "{\"identity\":{\"client_id\":true}}",
         "SkrSideCarArgs identity.client_id: expected a string", ANY_BUILD, false},
        {false, false, "{\"timeout_ms\":\"5000\"}",
         "SkrSideCarArgs timeout_ms: expected a whole number", ANY_BUILD, false},
        {false, false, "{\"timeout_ms\":0}",
         "SkrSideCarArgs timeout_ms: expected milliseconds between 1 and 600000", ANY_BUILD, false},
        {false, false, "{\"timeout_ms\":1.5}", "SkrSideCarArgs timeout_ms: expected a whole number",
         ANY_BUILD, false},
        {false, false, "{\"certcache\":{\"endpoint\":\"a\\u0000b\"}}",
         "SkrSideCarArgs certcache.endpoint: contains a NUL character", ANY_BUILD, false},
        {true, false, "{\"azure_filesystems\":{}}",
         "EncfsSideCarArgs azure_filesystems: expected an array", ANY_BUILD, false},
        {true, false, FS(FS_OK("/a") ",\"x\""),
         "EncfsSideCarArgs azure_filesystems[1]: expected a JSON object", ANY_BUILD, false},
        {true, false,
         FS(FS_OK("/a") ",{" FS0_URL
                        ",\"mount_point\":\"/b\",\"read_write\":\"yes\"," FS_KEY("k") "}"),
         "EncfsSideCarArgs azure_filesystems[1].read_write: expected true or false", ANY_BUILD,
         false},
        {true, false,
         FS("{" FS0_URL ",\"mount_point\":\"/b\",\"azure_url_private\":1," FS_KEY("k") "}"),
         "EncfsSideCarArgs azure_filesystems[0].azure_url_private: expected true or false",
         ANY_BUILD, false},
        {true, false,
         FS("{" FS0_URL ",\"mount_point\":\"/b\",\"key\":{\"kid\":\"k\",\"key_ops\":"
            "[\"wrapKey\",7],\"authority\":{\"endpoint\":\"m\"},\"akv\":{"
            "\"endpoint\":\"v\"}}}"),
         "EncfsSideCarArgs azure_filesystems[0].key.key_ops[1]: expected a string", ANY_BUILD,
         false},
        /* filesystems */
        {true, false, FS("{\"mount_point\":\"/a\"," FS_KEY("k") "}"),
         E0 ".azure_url is missing: expected the https:// URL of the image blob", ANY_BUILD, false},
        {true, false, FS("{\"azure_url\":\"\",\"mount_point\":\"/a\"," FS_KEY("k") "}"),
         E0 ".azure_url is missing: expected the https:// URL of the image blob", ANY_BUILD, false},
        {true, false, FS("{\"azure_url\":\"ftp://x/y\",\"mount_point\":\"/a\"," FS_KEY("k") "}"),
         E0 ".azure_url: expected the https:// URL of the image blob "
            "(https://account.blob.core.windows.net/container/image.img)",
         ANY_BUILD, false},
        {true, false,
         FS("{\"azure_url\":\"https://u:" SECRET_TOKEN
            "@x/y\",\"mount_point\":\"/a\"," FS_KEY("k") "}"),
         E0 ".azure_url: must not carry user credentials; use azure_url_private or a SAS query",
         ANY_BUILD, false},
        {true, false,
         FS("{\"azure_url\":\"http://acct.example/c/i\",\"azure_url_private\":true,"
            "\"mount_point\":\"/a\"," FS_KEY("k") "}"),
         E0 ".azure_url: azure_url_private sends a bearer token, so the URL must be https:// "
            "(http:// only for a loopback emulator)",
         ANY_BUILD, false},
        {true, false, FS("{" FS0_URL "," FS_KEY("k") "}"),
         E0 ".mount_point is missing: expected the absolute path where the filesystem appears "
            "(/mnt/remote/share)",
         ANY_BUILD, false},
        {true, false, FS(FS_OK("mnt/remote/a")), E0 ".mount_point is not absolute" MOUNT_FORM,
         ANY_BUILD, false},
        {true, false, FS(FS_OK("/mnt/../etc")),
         E0 ".mount_point contains a '.' or '..' component" MOUNT_FORM, ANY_BUILD, false},
        {true, false, FS(FS_OK("/mnt/./a")),
         E0 ".mount_point contains a '.' or '..' component" MOUNT_FORM, ANY_BUILD, false},
        {true, false, FS(FS_OK("/mnt//a")), E0 ".mount_point contains '//'" MOUNT_FORM, ANY_BUILD,
         false},
        {true, false, FS(FS_OK("/")), E0 ".mount_point is the root directory" MOUNT_FORM, ANY_BUILD,
         false},
        {true, false, FS(FS_OK("///")), E0 ".mount_point is the root directory" MOUNT_FORM,
         ANY_BUILD, false},
        {true, false, FS(FS_OK("/mnt/remote/a") "," FS_OK("/mnt/remote/a/")),
         "EncfsSideCarArgs azure_filesystems[1].mount_point /mnt/remote/a duplicates "
         "azure_filesystems[0]: expected a different directory for each filesystem",
         ANY_BUILD, true},
        {true, false, FS(FS_OK("/mnt/remote/a") "," FS_OK("/mnt/remote/a/b")),
         "EncfsSideCarArgs azure_filesystems[1].mount_point /mnt/remote/a/b and "
         "azure_filesystems[0].mount_point /mnt/remote/a nest: expected directories outside "
         "each other",
         ANY_BUILD, true},
        {true, false,
         FS(FS_OK("/mnt/remote/a/b") "," FS_OK("/mnt/remote/ab") "," FS_OK("/mnt/remote/a")),
         "EncfsSideCarArgs azure_filesystems[0].mount_point /mnt/remote/a/b and "
         "azure_filesystems[2].mount_point /mnt/remote/a nest: expected directories outside "
         "each other",
         ANY_BUILD, true},
        {true, false, FS("{" FS0_URL ",\"mount_point\":\"/a\"}"),
         E0 ".key is missing: a filesystem needs the key to release (kid, authority.endpoint, "
            "akv.endpoint)",
         ANY_BUILD, false},
        {true, false,
         FS("{" FS0_URL ",\"mount_point\":\"/a\",\"key\":{\"authority\":{"
            "\"endpoint\":\"m\"},\"akv\":{\"endpoint\":\"v\"}}}"),
         E0 ".key.kid is missing: expected the name of the key in the vault", ANY_BUILD, false},
        {true, false,
         FS("{" FS0_URL ",\"mount_point\":\"/a\",\"key\":{\"kid\":\"k\",\"akv\":{"
            "\"endpoint\":\"v\"}}}"),
         E0 ".key.authority.endpoint is missing: expected the attestation service host[:port] "
            "named in the key's release policy",
         ANY_BUILD, false},
        {true, false,
         FS("{" FS0_URL ",\"mount_point\":\"/a\",\"key\":{\"kid\":\"k\",\"authority\":"
            "{\"endpoint\":\"\"},\"akv\":{\"endpoint\":\"v\"}}}"),
         E0 ".key.authority.endpoint is missing: expected the attestation service host[:port] "
            "named in the key's release policy",
         ANY_BUILD, false},
        {true, false,
         FS("{" FS0_URL ",\"mount_point\":\"/a\",\"key\":{\"kid\":\"k\",\"authority\":"
            "{\"endpoint\":\"m\"},\"akv\":{\"bearer_token\":\"" SECRET_TOKEN "\"}}}"),
         E0 ".key.akv.endpoint is missing: expected the key vault or managed HSM host[:port] "
            "(myvault.vault.azure.net)",
         ANY_BUILD, false},
        {true, false,
         FS("{" FS0_URL ",\"mount_point\":\"/a\",\"key\":{\"kid\":\"k\",\"authority\":"
            "{\"endpoint\":\"m\"},\"akv\":{\"endpoint\":\"http://v.example\"}}}"),
         E0 ".key.akv.endpoint: http:// is refused (tokens and keys never travel in clear); "
            "expected host[:port] or https://host[:port]",
         ANY_BUILD, false},
        {true, false,
         FS("{" FS0_URL ",\"mount_point\":\"/a\",\"key\":{\"kid\":\"k\",\"authority\":"
            "{\"endpoint\":\"m\"},\"akv\":{\"endpoint\":\"v.example/keys\"}}}"),
         E0 ".key.akv.endpoint: expected host[:port] or https://host[:port] without a path",
         ANY_BUILD, false},
        {true, false,
         FS("{" FS0_URL ",\"mount_point\":\"/a\",\"key\":{\"kid\":\"k\",\"authority\":"
            "{\"endpoint\":\"m?x=1\"},\"akv\":{\"endpoint\":\"v\"}}}"),
         E0 ".key.authority.endpoint: expected host[:port] or https://host[:port] without "
            "credentials, query or fragment",
         ANY_BUILD, false},
        {true, false,
         FS("{" FS0_URL ",\"mount_point\":\"/a\",\"key\":{\"kid\":\"k\",\"authority\":"
            "{\"endpoint\":\"m\"},\"akv\":{\"endpoint\":\"v\",\"bearer_token\":\"" SECRET_TOKEN
            "\\n\"}}}"),
         E0 ".key.akv.bearer_token: expected a token without spaces or line breaks", ANY_BUILD,
         false},
        {true, false,
         FS("{" FS0_URL ",\"mount_point\":\"/a\"," FS_KEY("k") ",\"key_derivation\":{"
                                                               "\"salt\":\"xyz1\"}}"),
         E0 ".key_derivation.salt: expected hex digits (an even number of them)", ANY_BUILD, false},
        {true, false,
         FS("{" FS0_URL ",\"mount_point\":\"/a\"," FS_KEY("k") ",\"key_derivation\":{"
                                                               "\"salt\":\"abc\"}}"),
         E0 ".key_derivation.salt: expected hex digits (an even number of them)", ANY_BUILD, false},
        {true, false,
         FS("{" FS0_URL ",\"mount_point\":\"/a\"," FS_KEY("k") ",\"verity_root_hash\":"
                                                               "\"abcd\"}"),
         E0 ".verity_root_hash: expected the dm-verity root hash generatefs printed: 64 hex "
            "digits (SHA-256)",
         ANY_BUILD, false},
        /* a SHA-1 digest: not the layout generatefs writes */
        {true, false,
         FS("{" FS0_URL ",\"mount_point\":\"/a\"," FS_KEY("k") ",\"verity_root_hash\":"
                                                               "\"4392712ba01368efdf14b05c76f9"
                                                               "e4df0d536646\"}"),
         E0 ".verity_root_hash: expected the dm-verity root hash generatefs printed: 64 hex "
            "digits (SHA-256)",
         ANY_BUILD, false},
        {true, false,
         FS("{" FS0_URL ",\"mount_point\":\"/a\"," FS_KEY("k") ",\"verity_root_hash\":"
                                                               "\"4392712ba01368efdf14b05c76f9"
                                                               "e4df0d53664630b5d48632ed17a137f3"
                                                               "907g\"}"),
         E0 ".verity_root_hash: expected the dm-verity root hash generatefs printed: 64 hex "
            "digits (SHA-256)",
         ANY_BUILD, false},
        /* our EncfsSideCarArgs options */
        {true, false, "{\"work_dir\":\"run/sidecar\"}",
         "EncfsSideCarArgs work_dir is not absolute: expected an absolute path without '.', "
         "'..' or '//' components",
         ANY_BUILD, false},
        {true, false, "{\"work_dir\":\"/\"}",
         "EncfsSideCarArgs work_dir is the root directory: expected an absolute path without "
         "'.', '..' or '//' components",
         ANY_BUILD, false},
        {true, false, "{\"work_dir\":\"/run/../etc\"}",
         "EncfsSideCarArgs work_dir contains a '.' or '..' component: expected an absolute path "
         "without '.', '..' or '//' components",
         ANY_BUILD, false},
        {true, false, "{\"work_dir\":7}", "EncfsSideCarArgs work_dir: expected a string", ANY_BUILD,
         false},
        {true, false, "{\"ready_file\":\"/tmp//ready\"}",
         "EncfsSideCarArgs ready_file contains '//': expected an absolute path without '.', '..' "
         "or '//' components",
         ANY_BUILD, false},
        {true, false, "{\"on_mount_failure\":\"ignore\"}",
         "EncfsSideCarArgs on_mount_failure: unknown policy 'ignore'; expected exit (the "
         "default: clean up and exit non-zero) or continue (keep serving the others)",
         ANY_BUILD, false},
        {true, false, "{\"on_mount_failure\":false}",
         "EncfsSideCarArgs on_mount_failure: expected a string", ANY_BUILD, false},
        {true, false, "{\"access\":\"nfs\"}",
         "EncfsSideCarArgs access: unknown mode 'nfs'; expected fuse (lazy, the default) or "
         "download (the whole image first)",
         ANY_BUILD, false},
        {true, false, "{\"cache\":[]}", "EncfsSideCarArgs cache: expected a JSON object", ANY_BUILD,
         false},
        {true, false, "{\"cache\":{\"block_size\":\"512k\"}}",
         "EncfsSideCarArgs cache.block_size: expected a whole number", ANY_BUILD, false},
        {true, false, "{\"cache\":{\"block_size\":2048}}",
         "EncfsSideCarArgs cache.block_size: expected bytes between 4096 and 67108864", ANY_BUILD,
         false},
        {true, false, "{\"cache\":{\"block_size\":12288}}",
         "EncfsSideCarArgs cache.block_size: expected a power of two (such as 524288 for 512 "
         "KiB)",
         ANY_BUILD, false},
        {true, false, "{\"cache\":{\"capacity_blocks\":1}}",
         "EncfsSideCarArgs cache.capacity_blocks: expected a number of blocks between 2 and "
         "65536",
         ANY_BUILD, false},
        {true, false, "{\"cache\":{\"readahead_blocks\":0}}",
         "EncfsSideCarArgs cache.readahead_blocks: expected a number of blocks between 1 and "
         "32768",
         ANY_BUILD, false},
        {true, false, "{\"cache\":{\"capacity_blocks\":16,\"readahead_blocks\":9}}",
         "EncfsSideCarArgs cache.readahead_blocks: expected at most half of capacity_blocks (8)",
         ANY_BUILD, false},
        {true, false, "{\"cache\":{\"readahead_blocks\":33}}",
         "EncfsSideCarArgs cache.readahead_blocks: expected at most half of capacity_blocks "
         "(32)",
         ANY_BUILD, false},
        {true, false, "{\"cache\":{\"block_size\":67108864,\"capacity_blocks\":65}}",
         "EncfsSideCarArgs cache: block_size * capacity_blocks is over 4096 MiB of memory "
         "per filesystem",
         ANY_BUILD, false},
        {true, false,
         "{\"work_dir\":\"/mnt/remote\",\"azure_filesystems\":[" FS_OK("/mnt/remote/share") "]}",
         "EncfsSideCarArgs work_dir /mnt/remote and azure_filesystems[0].mount_point "
         "/mnt/remote/share overlap: expected a work_dir of the sidecar's own",
         ANY_BUILD, true},
        {true, false, "{\"work_dir\":\"/srv/a/work\",\"azure_filesystems\":[" FS_OK("/srv/a") "]}",
         "EncfsSideCarArgs work_dir /srv/a/work and azure_filesystems[0].mount_point /srv/a "
         "overlap: expected a work_dir of the sidecar's own",
         ANY_BUILD, true},
        {true, false, FS(FS_OK("/run/confidential-sidecar/x")),
         "EncfsSideCarArgs work_dir /run/confidential-sidecar and azure_filesystems[0]."
         "mount_point /run/confidential-sidecar/x overlap: expected a work_dir of the "
         "sidecar's own",
         ANY_BUILD, true},
        {true, false,
         FS("{" FS0_URL ",\"mount_point\":\"/a\"," FS_KEY(
                 "k") ",\"read_write\":true,"
                      "\"verity_root_hash\":\"4392712ba01368efdf14b05c76f9e4df0d53664630b5d48632"
                      "ed17a137f39076\"}"),
         E0 ".verity_root_hash pins a read-only image: expected read_write false", ANY_BUILD,
         false},
        /* raw_key */
        {true, false, FS("{" FS0_URL ",\"mount_point\":\"/a\"," RAW64 "}"),
         E0 ".raw_key is for testing only: this build does not accept it (meson "
            "-Dallow_raw_key=true)",
         DEFAULT_BUILD, false},
        {true, false, FS("{" FS0_URL ",\"mount_point\":\"/a\"," FS_KEY("k") "," RAW64 "}"),
         E0 ".raw_key is for testing only: this build does not accept it (meson "
            "-Dallow_raw_key=true)",
         DEFAULT_BUILD, false},
        {true, false, FS("{" FS0_URL ",\"mount_point\":\"/a\",\"raw_key\":\"" SECRET_RAW "0\"}"),
         E0 ".raw_key: expected 64 hex digits (a 32-byte LUKS key)", RAW_KEY_BUILD, false},
        {true, false, FS("{" FS0_URL ",\"mount_point\":\"/a\",\"raw_key\":\"zz" SECRET_RAW "\"}"),
         E0 ".raw_key: expected 64 hex digits (a 32-byte LUKS key)", RAW_KEY_BUILD, false},
        {true, false, FS("{" FS0_URL ",\"mount_point\":\"/a\"," FS_KEY("k") "," RAW64 "}"),
         E0 ": expected key or raw_key, not both", RAW_KEY_BUILD, false},
        /* SkrSideCarArgs: ours */
        {false, false, "{\"attestation_source\":\"tdx\"}",
         "SkrSideCarArgs attestation_source: unknown source 'tdx'; expected auto, sev-guest, "
         "sev, configfs-tsm or virtual",
         ANY_BUILD, false},
        {false, false, "{\"attestation_source\":\"virtual\"}",
         "SkrSideCarArgs attestation_source virtual needs virtual_platform_dir: the directory "
         "made by 'devcloud init'",
         ANY_BUILD, true},
        {false, false, "{\"virtual_platform_dir\":\"/v\"}",
         "SkrSideCarArgs virtual_platform_dir is only used with attestation_source virtual: the "
         "virtual platform is never chosen implicitly",
         ANY_BUILD, true},
        {false, false, "{\"attestation_source\":\"sev-guest\",\"virtual_platform_dir\":\"/v\"}",
         "SkrSideCarArgs virtual_platform_dir is only used with attestation_source virtual: the "
         "virtual platform is never chosen implicitly",
         ANY_BUILD, true},
        {false, false, "{\"certcache\":{\"endpoint_type\":\"THIM\"}}",
         "SkrSideCarArgs certcache.endpoint_type: unknown type 'THIM'; expected AMD, AzCache or "
         "LocalTHIM",
         ANY_BUILD, false},
        {false, false, "{\"certcache\":{\"endpoint\":\"a.example/x?y\"}}",
         "SkrSideCarArgs certcache.endpoint: expected text without spaces, '?', '#' or control "
         "characters",
         ANY_BUILD, false},
        {false, false, "{\"maaconfig\":{\"user_agent\":\"a\\r\\nX-Injected: 1\"}}",
         "SkrSideCarArgs maaconfig.user_agent: expected printable text without line breaks",
         ANY_BUILD, false},
        {false, false, "{\"imds_endpoint\":\"169.254.169.254\"}",
         "SkrSideCarArgs imds_endpoint: expected an http(s):// URL such as "
         "http://169.254.169.254",
         ANY_BUILD, false},
        {false, false, "{\"log_format\":\"xml\"}",
         "SkrSideCarArgs log_format: unknown format 'xml'; expected human or json", ANY_BUILD,
         false},
        {false, false, "{\"allowed_endpoints\":{\"attestation\":[\"http://maa.example\"]}}",
         "SkrSideCarArgs allowed_endpoints.attestation[0]: http:// is refused (tokens and keys "
         "never travel in clear); expected host[:port] or https://host[:port]",
         ANY_BUILD, false},
        {false, false, "{\"allowed_endpoints\":{\"key_vault\":[\"v.example\",3]}}",
         "SkrSideCarArgs allowed_endpoints.key_vault[1]: expected a string (host[:port] or "
         "https://host[:port])",
         ANY_BUILD, false},
        {false, false, "{\"allowed_endpoints\":{\"key_vault\":[\"v.example:99999\"]}}",
         "SkrSideCarArgs allowed_endpoints.key_vault[0]: expected host[:port] or "
         "https://host[:port]",
         ANY_BUILD, false},
        {false, false, "{\"allowed_endpoints\":[\"v.example\"]}",
         "SkrSideCarArgs allowed_endpoints: expected a JSON object", ANY_BUILD, false},
};

static void test_refused(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(refused_cases) / sizeof(refused_cases[0]); i++) {
		const struct refused *t = &refused_cases[i];
		struct sidecar_config c = {0};
		struct skr_error err = {0};
		_cleanup_free_ char *b = NULL;
		const char *in;
		int r;

		if ((t->only == DEFAULT_BUILD && sidecar_config_raw_key_allowed()) ||
		    (t->only == RAW_KEY_BUILD && !sidecar_config_raw_key_allowed()))
			continue;
		in = t->raw ? t->input : (b = encode(t->input, SPELL_STD));
		r = t->encfs ? sidecar_config_parse_encfs_args(in, strlen(in), &c, &err)
		             : sidecar_config_parse_skr_args(in, strlen(in), &c, &err);
		if (t->at_validate) {
			if (r != 0)
				fail_msg("case %zu: parse refused: %s", i, err.msg);
			r = sidecar_config_validate(&c, &err);
		}
		if (r != -EINVAL)
			fail_msg("case %zu (%s): expected -EINVAL, got %d", i, t->input, r);
		if (strcmp(err.msg, t->msg) != 0)
			fail_msg("case %zu:\n  got      %s\n  expected %s", i, err.msg, t->msg);
		assert_null(strstr(err.msg, SECRET_TOKEN));
		assert_null(strstr(err.msg, SECRET_RAW));
		assert_null(strchr(err.msg, '\n'));
		sidecar_config_clear(&c);
	}
}

/* raw_key accepted in a build that allows it, and then only in redacted form. */
static void test_raw_key(void **state)
{
	struct sidecar_config c = {0};
	struct skr_error err = {0};
	int r;

	(void)state;
	r = parse_encfs(FS("{" FS0_URL ",\"mount_point\":\"/a\"," RAW64 "}"), &c, &err);
	if (!sidecar_config_raw_key_allowed()) {
		assert_int_equal(r, -EINVAL);
		assert_null(c.filesystems[0].raw_key_hex);
		sidecar_config_clear(&c);
		return;
	}
	assert_int_equal(r, 0);
	assert_string_equal(c.filesystems[0].raw_key_hex, SECRET_RAW);
	assert_null(c.filesystems[0].kid);
	assert_int_equal(sidecar_config_validate(&c, &err), 0);
	sidecar_config_clear(&c);
}

/* ---------------------------------------------------------------------------------------------
 * --print-config
 * ------------------------------------------------------------------------------------------- */

static char *print_to_string(const struct sidecar_config *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(sidecar_config_print(c, f), 0);
	assert_int_equal(fclose(f), 0);
	return buf;
}

static json_object *path_get(json_object *o, const char *a, const char *b)
{
	json_object *v = NULL;

	assert_true(json_object_object_get_ex(o, a, &v));
	if (b)
		assert_true(json_object_object_get_ex(v, b, &v));
	return v;
}

static void test_print_redacts(void **state)
{
	struct sidecar_config c = {0};
	struct skr_error err = {0};
	_cleanup_free_ char *text = NULL;
	_cleanup_json_ json_object *o = NULL;
	json_object *fs;

	(void)state;
	assert_int_equal(parse_skr("{\"attestation_source\":\"virtual\",\"virtual_platform_dir\":"
	                           "\"/v\"}",
	                           &c, &err),
	                 0);
	assert_int_equal(parse_encfs(ENCFS_TWO, &c, &err), 0);
	if (sidecar_config_raw_key_allowed()) {
		/* A third filesystem with a raw key. */
		struct sidecar_config d = {0};

		assert_int_equal(
		        parse_encfs(FS("{" FS0_URL ",\"mount_point\":\"/r\"," RAW64 "}"), &d, &err),
		        0);
		c.filesystems[c.n_filesystems++] = d.filesystems[0];
	}
	text = print_to_string(&c);
	assert_null(strstr(text, SECRET_TOKEN));
	assert_null(strstr(text, "eyJTOKEN"));
	assert_null(strstr(text, SECRET_RAW));
	assert_null(strstr(text, "5ec7e7"));
	assert_null(strstr(text, "SASSIGNATURESECRET"));
	assert_null(strstr(text, "sv=2022"));

	assert_int_equal(json_parse(text, strlen(text), "print", &o, &err), 0);
	assert_int_equal(json_object_get_int(path_get(o, "port", NULL)), SIDECAR_DEFAULT_PORT);
	assert_string_equal(json_object_get_string(path_get(o, "log_level", NULL)), "info");
	assert_string_equal(json_object_get_string(path_get(o, "log_format", NULL)), "human");
	assert_int_equal(json_object_get_int(path_get(o, "timeout_ms", NULL)), 30000);
	assert_string_equal(json_object_get_string(path_get(o, "maaconfig", "user_agent")),
	                    "ConfidentialSkrContainer");
	assert_string_equal(json_object_get_string(path_get(o, "imds_endpoint", NULL)),
	                    "http://169.254.169.254");
	assert_string_equal(json_object_get_string(path_get(o, "attestation_source", NULL)),
	                    "virtual");
	assert_string_equal(json_object_get_string(path_get(o, "certcache", "endpoint_type")),
	                    "LocalTHIM");
	assert_int_equal(json_object_array_length(path_get(o, "allowed_endpoints", "attestation")),
	                 1);
	assert_string_equal(json_object_get_string(json_object_array_get_idx(
	                            path_get(o, "allowed_endpoints", "attestation"), 0)),
	                    "sharedeus2.eus2.attest.azure.net");
	assert_int_equal(json_object_array_length(path_get(o, "allowed_endpoints", "key_vault")),
	                 1);
	assert_string_equal(json_object_get_string(json_object_array_get_idx(
	                            path_get(o, "allowed_endpoints", "key_vault"), 0)),
	                    "myvault.vault.azure.net");
	fs = json_object_array_get_idx(path_get(o, "azure_filesystems", NULL), 0);
	assert_string_equal(
	        json_object_get_string(path_get(path_get(fs, "key", "akv"), "bearer_token", NULL)),
	        "<redacted>");
	assert_string_equal(json_object_get_string(path_get(fs, "key_derivation", "label")),
	                    "Model Encryption Key");
	fs = json_object_array_get_idx(path_get(o, "azure_filesystems", NULL), 1);
	assert_string_equal(json_object_get_string(path_get(fs, "azure_url", NULL)),
	                    "https://acct.blob.core.windows.net/models/m.img?<redacted>");
	assert_string_equal(json_object_get_string(path_get(fs, "key_derivation", "label")),
	                    "Symmetric Encryption Key");
	/* Our EncfsSideCarArgs options, at their defaults. */
	assert_string_equal(json_object_get_string(path_get(o, "work_dir", NULL)),
	                    "/run/confidential-sidecar");
	assert_true(json_object_is_type(path_get(o, "ready_file", NULL), json_type_null));
	assert_string_equal(json_object_get_string(path_get(o, "on_mount_failure", NULL)), "exit");
	assert_string_equal(json_object_get_string(path_get(o, "access", NULL)), "fuse");
	assert_int_equal(json_object_get_int(path_get(o, "cache", "block_size")), 524288);
	assert_int_equal(json_object_get_int(path_get(o, "cache", "capacity_blocks")), 64);
	assert_int_equal(json_object_get_int(path_get(o, "cache", "readahead_blocks")), 32);
	fs = json_object_array_get_idx(path_get(o, "azure_filesystems", NULL), 1);
	assert_string_equal(json_object_get_string(path_get(fs, "verity_root_hash", NULL)),
	                    "4392712ba01368efdf14b05c76f9e4df0d53664630b5d48632ed17a137f39076");
	if (sidecar_config_raw_key_allowed()) {
		fs = json_object_array_get_idx(path_get(o, "azure_filesystems", NULL), 2);
		assert_string_equal(json_object_get_string(path_get(fs, "raw_key", NULL)),
		                    "<redacted>");
	}
	sidecar_config_clear(&c);
	assert_int_equal(c.n_filesystems, 0);
	assert_null(c.filesystems[0].akv_bearer_token);
}

/* ---------------------------------------------------------------------------------------------
 * Allowlists
 * ------------------------------------------------------------------------------------------- */

static void test_allowlists(void **state)
{
	struct sidecar_config c = {0};
	struct skr_error err = {0};
	static const struct {
		const char *endpoint;
		bool maa, akv;
	} cases[] = {
	        /* explicit entries, normalised */
	        {"maa.example", true, false},
	        {"MAA.Example", true, false},
	        {"https://maa.example", true, false},
	        {"https://maa.example/", true, false},
	        {"HTTPS://maa.example:443", true, false},
	        {"maa.example:8443", false, false},
	        {"http://maa.example", false, false},
	        {"maa.example.evil.net", false, false},
	        {"evil.net/maa.example", false, false},
	        {"https://evil@maa.example", false, false},
	        {"maa.example?x", false, false},
	        {"maa.example ", false, false},
	        {"127.0.0.1:8443", true, false},
	        {"https://127.0.0.1:8443/", true, false},
	        {"127.0.0.1", false, false},
	        {"[::1]:9443", true, false},
	        {"vault.example", false, true},
	        {"https://Vault.Example:443/", false, true},
	        {"vault.example:8443", false, false},
	        {"vault.example/keys", false, false},
	        /* "://" after the first '/' is part of the path, not a scheme (fuzzer find: the
	         * stored spelling must be allowed as written) */
	        {"maa.path/a://b", true, false},
	        {"https://maa.path/a://b/", true, false},
	        {"maa.path/a:/b", false, false},
	        {"ftp://maa.path/a://b", false, false},
	        /* the filesystem's own endpoints are always allowed */
	        {"sharedeus2.eus2.attest.azure.net", true, false},
	        {"myvault.vault.azure.net", false, true},
	        {"https://MYVAULT.vault.azure.net", false, true},
	        {"othervault.vault.azure.net", false, false},
	        {"", false, false},
	};

	(void)state;
	assert_int_equal(parse_skr("{\"allowed_endpoints\":{\"attestation\":[\"maa.example\","
	                           "\"https://127.0.0.1:8443\",\"[::1]:9443\",\"maa.path/a://"
	                           "b\"],\"key_vault\":["
	                           "\"VAULT.example:443\"]}}",
	                           &c, &err),
	                 0);
	assert_int_equal(parse_encfs(FS(FS_OK("/a")), &c, &err), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (sidecar_config_maa_allowed(&c, cases[i].endpoint) != cases[i].maa)
			fail_msg("maa_allowed(%s) != %d", cases[i].endpoint, cases[i].maa);
		if (sidecar_config_akv_allowed(&c, cases[i].endpoint) != cases[i].akv)
			fail_msg("akv_allowed(%s) != %d", cases[i].endpoint, cases[i].akv);
	}
	assert_false(sidecar_config_maa_allowed(&c, NULL));
	sidecar_config_clear(&c);

	/* Default: only what the filesystems name; nothing at all without them. */
	assert_int_equal(parse_encfs(FS(FS_OK("/a")), &c, &err), 0);
	assert_true(sidecar_config_maa_allowed(&c, "sharedeus2.eus2.attest.azure.net"));
	assert_false(sidecar_config_maa_allowed(&c, "maa.example"));
	assert_true(sidecar_config_akv_allowed(&c, "myvault.vault.azure.net"));
	assert_false(sidecar_config_akv_allowed(&c, "sharedeus2.eus2.attest.azure.net"));
	sidecar_config_clear(&c);
	assert_false(sidecar_config_maa_allowed(&c, "sharedeus2.eus2.attest.azure.net"));
	assert_false(sidecar_config_akv_allowed(&c, "myvault.vault.azure.net"));
}

/* ---------------------------------------------------------------------------------------------
 * Attester configuration
 * ------------------------------------------------------------------------------------------- */

static void test_attest_mapping(void **state)
{
	struct sidecar_config c = {0};
	struct skr_error err = {0};
	struct skr_attest_config a;

	(void)state;
	assert_int_equal(
	        parse_skr("{\"attestation_source\":\"virtual\",\"virtual_platform_dir\":"
	                  "\"/v\",\"ca_bundle\":\"/ca.pem\",\"imds_endpoint\":\"http://"
	                  "127.0.0.1:1\",\"security_context_dir\":\"/sc\",\"cert_cache_dir\":"
	                  "\"/cc\",\"timeout_ms\":1234,\"identity\":{\"client_id\":\"cid\"},"
	                  "\"maaconfig\":{\"user_agent\":\"ua\"},\"certcache\":{"
	                  "\"endpoint_type\":\"LocalTHIM\",\"endpoint\":\"169.254.169.254/"
	                  "metadata/THIM/amd/certification\"}}",
	                  &c, &err),
	        0);
	memset(&a, 0xa5, sizeof(a));
	sidecar_config_attest(&c, &a);
	assert_int_equal(a.source.kind, SNP_SOURCE_VIRTUAL);
	assert_string_equal(a.source.virtual_dir, "/v");
	assert_null(a.source.root);
	assert_int_equal(a.source.vmpl, 0);
	assert_int_equal(a.certcache.type, SNP_CERTCACHE_LOCAL_THIM);
	assert_string_equal(a.certcache.endpoint,
	                    "169.254.169.254/metadata/THIM/amd/certification");
	assert_string_equal(a.certcache.cache_dir, "/cc");
	assert_string_equal(a.certcache.ca_bundle, "/ca.pem");
	assert_int_equal(a.certcache.timeout_ms, 1234);
	assert_null(a.certcache.trust);
	assert_string_equal(a.security_context_dir, "/sc");
	assert_string_equal(a.ca_bundle, "/ca.pem");
	assert_string_equal(a.user_agent, "ua");
	assert_int_equal(a.timeout_ms, 1234);
	assert_int_equal(a.max_attempts, 0);
	assert_int_equal(a.kek_pool_size, 0);
	assert_string_equal(a.identity.client_id, "cid");
	assert_string_equal(a.identity.imds_endpoint, "http://127.0.0.1:1");
	assert_string_equal(a.identity.ca_bundle, "/ca.pem");
	assert_int_equal(a.identity.timeout_ms, 1234);
	sidecar_config_clear(&c);
}

/* ---------------------------------------------------------------------------------------------
 * Environment and command line
 * ------------------------------------------------------------------------------------------- */

static void env_clear(void)
{
	unsetenv("SkrSideCarArgs");
	unsetenv("EncfsSideCarArgs");
	unsetenv("Port");
	unsetenv("LogLevel");
	unsetenv("LogFile");
}

static int load(struct sidecar_config *c, struct skr_error *err, ...)
{
	char *argv[16] = {"confidential-sidecar"};
	int argc = 1;
	va_list ap;
	char *a;

	va_start(ap, err);
	while ((a = va_arg(ap, char *)) && argc < 15)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	skr_error_clear(err);
	return sidecar_config_load(argc, argv, c, err);
}

static void test_env_and_argv(void **state)
{
	struct sidecar_config c;
	struct skr_error err = {0};
	_cleanup_free_ char *env_doc = encode(AKS_SAMPLE, SPELL_NEWLINE);
	_cleanup_free_ char *argv_doc =
	        encode("{\"certcache\":{\"endpoint_type\":\"AMD\"}}", SPELL_URL_NOPAD);
	_cleanup_free_ char *encfs_doc = encode(FS(FS_OK("/mnt/remote/a")), SPELL_WRAPPED);

	(void)state;
	env_clear();
	/* Nothing given: defaults. */
	assert_int_equal(load(&c, &err, NULL), 0);
	assert_int_equal(c.port, 8080);
	assert_null(c.log_level);
	assert_int_equal(c.certcache.type, SNP_CERTCACHE_NONE);
	sidecar_config_clear(&c);

	/* The environment, as the Go sidecar's scripts set it (YAML adds newlines). */
	setenv("SkrSideCarArgs", env_doc, 1);
	setenv("EncfsSideCarArgs", encfs_doc, 1);
	setenv("Port", "9090\n", 1);
	setenv("LogLevel", "Warning\n", 1);
	setenv("LogFile", "/tmp/sidecar.log", 1);
	assert_int_equal(load(&c, &err, NULL), 0);
	assert_int_equal(c.port, 9090);
	assert_string_equal(c.log_level, "Warning");
	assert_string_equal(c.log_file, "/tmp/sidecar.log");
	assert_int_equal(c.certcache.type, SNP_CERTCACHE_LOCAL_THIM);
	assert_int_equal(c.n_filesystems, 1);
	assert_string_equal(c.filesystems[0].mount_point, "/mnt/remote/a");
	sidecar_config_clear(&c);

	/* The command line wins, a document as a whole. */
	assert_int_equal(load(&c, &err, "--skr-args", argv_doc, "--port=1", "--log-level", "trace",
	                      "--log-file", "/tmp/other.log", "--log-format", "json", NULL),
	                 0);
	assert_int_equal(c.port, 1);
	assert_string_equal(c.log_level, "trace");
	assert_string_equal(c.log_file, "/tmp/other.log");
	assert_int_equal(c.log_format, SIDECAR_LOG_JSON);
	assert_int_equal(c.certcache.type, SNP_CERTCACHE_AMD);
	assert_null(c.certcache.endpoint); /* not merged with the environment's document */
	assert_int_equal(c.n_filesystems, 1);
	sidecar_config_clear(&c);

	/* --log-format overrides the document's log_format. */
	{
		_cleanup_free_ char *d = encode("{\"log_format\":\"json\"}", SPELL_STD);

		assert_int_equal(load(&c, &err, "--skr-args", d, NULL), 0);
		assert_int_equal(c.log_format, SIDECAR_LOG_JSON);
		sidecar_config_clear(&c);
		assert_int_equal(load(&c, &err, "--skr-args", d, "--log-format", "human", NULL), 0);
		assert_int_equal(c.log_format, SIDECAR_LOG_HUMAN);
		sidecar_config_clear(&c);
	}
	env_clear();
}

static void test_env_and_argv_refused(void **state)
{
	static const struct {
		const char *env_name, *env_value;
		const char *arg1, *arg2;
		const char *msg;
	} cases[] = {
	        {"Port", "0", NULL, NULL,
	         "Port: expected a decimal port number between 1 and 65535"},
	        {"Port", "65536", NULL, NULL,
	         "Port: expected a decimal port number between 1 and 65535"},
	        {"Port", "0x50", NULL, NULL,
	         "Port: expected a decimal port number between 1 and 65535"},
	        {"Port", "+80", NULL, NULL,
	         "Port: expected a decimal port number between 1 and 65535"},
	        {NULL, NULL, "--port", "-1",
	         "--port: expected a decimal port number between 1 and 65535"},
	        {NULL, NULL, "--port", "80 80",
	         "--port: expected a decimal port number between 1 and 65535"},
	        {"LogLevel", "verbose", NULL, NULL,
	         "LogLevel: unknown level 'verbose'; expected panic, fatal, error, warning, warn, "
	         "info, debug or trace"},
	        {NULL, NULL, "--log-level", "loud",
	         "--log-level: unknown level 'loud'; expected panic, fatal, error, warning, warn, "
	         "info, debug or trace"},
	        {NULL, NULL, "--log-format", "xml",
	         "--log-format: unknown format 'xml'; expected human or json"},
	        {NULL, NULL, "--log-file", " ", "--log-file: expected a file name"},
	        {NULL, NULL, "--frobnicate", NULL, "unknown option '--frobnicate'; see --help"},
	        {NULL, NULL, "--port", NULL, "--port needs a value; see --help"},
	        {NULL, NULL, "serve", NULL, "unexpected argument 'serve'; see --help"},
	        {"SkrSideCarArgs", "e30=!", NULL, NULL,
	         "SkrSideCarArgs is not base64: data after the '=' padding at offset 4 (line "
	         "breaks "
	         "not counted); expected standard or URL-safe base64 of a JSON document"},
	        {NULL, NULL, "--encfs-args",
	         "W10=", "EncfsSideCarArgs: expected a JSON object at the top level"},
	        {"SkrSideCarArgs", "eyJ2aXJ0dWFsX3BsYXRmb3JtX2RpciI6Ii92In0=", NULL, NULL,
	         "SkrSideCarArgs virtual_platform_dir is only used with attestation_source "
	         "virtual: "
	         "the virtual platform is never chosen implicitly"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sidecar_config c;
		struct skr_error err = {0};

		env_clear();
		if (cases[i].env_name)
			setenv(cases[i].env_name, cases[i].env_value, 1);
		assert_int_equal(load(&c, &err, cases[i].arg1, cases[i].arg2, NULL), -EINVAL);
		if (strcmp(err.msg, cases[i].msg) != 0)
			fail_msg("case %zu:\n  got      %s\n  expected %s", i, err.msg,
			         cases[i].msg);
		/* A refused configuration leaves nothing behind. */
		assert_null(c.log_level);
		assert_int_equal(c.n_filesystems, 0);
	}
	env_clear();
}

static void test_help_and_print(void **state)
{
	struct sidecar_config c;
	struct skr_error err = {0};
	_cleanup_free_ char *doc = encode(FS("{" FS0_URL ",\"mount_point\":\"/a\",\"key\":{\"kid\":"
	                                     "\"k\",\"authority\":{\"endpoint\":\"m.example\"},"
	                                     "\"akv\":{\"endpoint\":\"v.example\",\"bearer_token\":"
	                                     "\"" SECRET_TOKEN "\"}}}"),
	                                  SPELL_STD);
	int saved = dup(STDOUT_FILENO);
	FILE *tmp = tmpfile();
	char out[8192];
	size_t n;

	(void)state;
	env_clear();
	assert_non_null(tmp);
	fflush(stdout);
	assert_true(dup2(fileno(tmp), STDOUT_FILENO) >= 0);
	assert_int_equal(load(&c, &err, "--help", NULL), 1);
	sidecar_config_clear(&c);
	assert_int_equal(load(&c, &err, "--encfs-args", doc, "--print-config", NULL), 1);
	sidecar_config_clear(&c);
	fflush(stdout);
	assert_true(dup2(saved, STDOUT_FILENO) >= 0);
	close(saved);
	rewind(tmp);
	n = fread(out, 1, sizeof(out) - 1, tmp);
	out[n] = '\0';
	fclose(tmp);
	assert_non_null(strstr(out, "Usage: confidential-sidecar"));
	assert_non_null(strstr(out, "\"bearer_token\": \"<redacted>\""));
	assert_non_null(strstr(out, "\"mount_point\": \"/a\""));
	assert_null(strstr(out, SECRET_TOKEN));
	/* No allowed endpoint but the filesystem's: no warning about refusing everything. */
	assert_null(strstr(logbuf, "refuse every request"));

	log_reset();
	assert_int_equal(load(&c, &err, NULL), 0);
	assert_non_null(strstr(logbuf, "no attestation or key vault endpoint is allowed"));
	sidecar_config_clear(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_accepted, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_unknown_fields_warning, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_ours_in_azure_info, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_merge, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_raw_key, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_print_redacts, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_allowlists, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_attest_mapping, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_env_and_argv, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_env_and_argv_refused, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_help_and_print, setup, teardown),
	};

	return cmocka_run_group_tests_name(sidecar_config_raw_key_allowed()
	                                           ? "sidecar_config (raw_key allowed)"
	                                           : "sidecar_config",
	                                   tests, NULL, NULL);
}
