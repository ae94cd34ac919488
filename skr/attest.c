/* SPDX-License-Identifier: MIT */
/*
 * The attester: a report bound to runtime data, the certificate chain that endorses it
 * (protocols.md §3.4: match the TCB, else refresh, else take a new report), the MAA token built
 * from both (§4.1, §7.5 steps 1–3) and the verification of such tokens (§4.2).
 *
 * Thread safety: one attester may be used from several threads. The report source (device file
 * descriptors) is used under a->source_lock and the certificate fetcher (an on-disk cache, KDS
 * downloads with retries) under a->fetcher_lock, each one call at a time; a slow download thus
 * never holds up a report. Token issuers' key sets are cached by the token verifier
 * (token_verifier.c, its own lock); the HTTP client is thread-safe by itself (http.c lends each
 * request its own curl handle) and MAA calls run in parallel; the identity and the KEK pool lock
 * internally; the vault trust store is built once under a->trust_lock; the security context and
 * THIM data are read-only after skr_attester_new(). No two of these locks are ever nested.
 *
 * The attester also owns what secure key release (release.c) needs: the bearer-token identity
 * and the pool of wrapping keys. Its state is in attest_internal.h for that reason.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>
#include <openssl/sha.h>

#include "attest_internal.h"
#include "b64.h"
#include "cleanup.h"
#include "http.h"
#include "json_util.h"
#include "jwt.h"
#include "kek_pool.h"
#include "log.h"
#include "maa.h"
#include "ossl.h"
#include "secret.h"
#include "skr.h"
#include "token_verifier.h"

#define ATTEST_DEFAULT_USER_AGENT "ConfidentialSkrContainer"
#define ATTEST_DEFAULT_TIMEOUT_MS 30000
#define ATTEST_DEFAULT_ATTEMPTS 3
/* host-amd-cert-base64 is a THIM JSON of ~6 KiB; anything near this cap is not one. */
#define ATTEST_MAX_THIM_B64 (256u * 1024)
/* Wrapping keys kept ready for releases when the configuration says 0 (the default). */
#define ATTEST_DEFAULT_KEK_POOL 2

DEFINE_CLEANUP_FUNC(struct snp_cert_chain *, snp_cert_chain_free)
DEFINE_CLEANUP_FUNC(struct skr_attester *, skr_attester_free)

static inline void cert_table_clearp(struct snp_cert_table *t)
{
	snp_cert_table_clear(t);
}

/* ---------------------------------------------------------------------------------------------
 * Creation
 * ------------------------------------------------------------------------------------------- */

/* host-amd-cert-base64: base64 of the THIM JSON the host placed in the security context. */
static int load_thim(struct skr_attester *a, struct skr_error *err)
{
	_cleanup_free_ uint8_t *json = NULL;
	const char *b64 = a->sc.host_amd_cert_b64;
	size_t len;
	int r;

	if (!b64 || !*b64)
		return 0;
	if (strlen(b64) > ATTEST_MAX_THIM_B64)
		return skr_error_set(
		        err, -EFBIG,
		        "security context: host-amd-cert-base64 is larger than %u bytes",
		        ATTEST_MAX_THIM_B64);
	r = b64_decode(b64, strlen(b64), B64_ACCEPT_ANY, &json, &len);
	if (r == -ENOMEM)
		return skr_error_set(err, r, "out of memory");
	if (r < 0)
		return skr_error_set(err, -EINVAL,
		                     "security context: host-amd-cert-base64 is not base64");
	r = snp_thim_parse((const char *)json, len, &a->thim, err);
	if (r < 0)
		return skr_error_prefix(err, "security context host-amd-cert-base64: ");
	a->have_thim = true;
	log_info("attester: THIM certificates from the security context (tcbm %s)",
	         a->thim.tcbm_str);
	return 0;
}

/*
 * What releases need: the identity for vault bearer tokens (the attester's CA bundle unless the
 * identity names its own) and the pool of wrapping keys (0 → default, negative → none).
 */
static int attester_release_setup(struct skr_attester *a, const struct skr_attest_config *cfg,
                                  struct skr_error *err)
{
	struct skr_identity_config ic = cfg->identity;
	size_t pool;
	int r;

	if (!ic.ca_bundle)
		ic.ca_bundle = cfg->ca_bundle;
	r = skr_identity_new(&ic, &a->identity, err);
	if (r < 0)
		return skr_error_prefix(err, "attester: ");
	if (cfg->kek_pool_size < 0)
		pool = 0;
	else if (cfg->kek_pool_size == 0)
		pool = ATTEST_DEFAULT_KEK_POOL;
	else
		pool = (size_t)cfg->kek_pool_size;
	if (pool > KEK_POOL_MAX_TARGET)
		return skr_error_set(err, -EINVAL,
		                     "attester: kek_pool_size %zu exceeds the maximum of %d", pool,
		                     KEK_POOL_MAX_TARGET);
	r = kek_pool_new(pool, &a->kek_pool, err);
	if (r < 0)
		return skr_error_prefix(err, "attester: wrapping key pool: ");
	return 0;
}

int skr_attester_new(const struct skr_attest_config *cfg, struct skr_attester **out,
                     struct skr_error *err)
{
	_cleanup_(skr_attester_freep) struct skr_attester *a = NULL;
	struct http_client_config hc = {0};
	int r;

	*out = NULL;
	if (!cfg)
		return skr_error_set(err, -EINVAL, "attester: no configuration");
	a = calloc(1, sizeof(*a));
	if (!a)
		return skr_error_set(err, -ENOMEM, "out of memory");
	pthread_mutex_init(&a->source_lock, NULL);
	pthread_mutex_init(&a->fetcher_lock, NULL);
	pthread_mutex_init(&a->trust_lock, NULL);
	pthread_mutex_init(&a->table_cache_lock, NULL);

	/* The source first: outside a TEE this is where a misconfigured start must stop. */
	r = snp_source_open(&cfg->source, &a->source, err);
	if (r < 0)
		return r;

	hc.ca_bundle = cfg->ca_bundle;
	hc.timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : ATTEST_DEFAULT_TIMEOUT_MS;
	hc.max_attempts = cfg->max_attempts > 0 ? cfg->max_attempts : ATTEST_DEFAULT_ATTEMPTS;
	hc.user_agent =
	        cfg->user_agent && *cfg->user_agent ? cfg->user_agent : ATTEST_DEFAULT_USER_AGENT;
	r = http_client_new(&hc, &a->http, err);
	if (r < 0)
		return skr_error_prefix(err, "attester: HTTP client: ");
	r = token_verifier_new_with_http(a->http, &a->verifier, err);
	if (r < 0)
		return skr_error_prefix(err, "attester: ");
	if (cfg->ca_bundle && *cfg->ca_bundle) {
		a->ca_bundle = strdup(cfg->ca_bundle);
		if (!a->ca_bundle)
			return skr_error_set(err, -ENOMEM, "out of memory");
	}

	/*
	 * Outside ACI there is no security context: discovery then finds nothing, which is not
	 * an error (the chain comes from the platform or the certificate cache); a directory
	 * named in the configuration must exist.
	 */
	r = snp_security_context_load(cfg->security_context_dir, &a->sc, err);
	if (r < 0)
		return skr_error_prefix(err, "attester: ");
	r = load_thim(a, err);
	if (r < 0)
		return r;

	if (cfg->certcache.type != SNP_CERTCACHE_NONE) {
		struct snp_certcache_config cc = cfg->certcache;

		if (!cc.ca_bundle)
			cc.ca_bundle = cfg->ca_bundle;
		r = snp_cert_fetcher_new(&cc, &a->fetcher, err);
		if (r < 0)
			return skr_error_prefix(err, "attester: certificate cache: ");
	}
	r = attester_release_setup(a, cfg, err);
	if (r < 0)
		return r;
	log_info("attester: source %s, certificate cache %s, security context %s",
	         snp_source_kind_name(snp_source_kind_of(a->source)),
	         a->fetcher ? "configured" : "none", a->sc.dir ? a->sc.dir : "none");
	*out = TAKE_PTR(a);
	return 0;
}

void skr_attester_free(struct skr_attester *a)
{
	if (!a)
		return;
	/* The pool's thread first: it must not outlive anything (it only uses its own state). */
	kek_pool_free(a->kek_pool);
	skr_identity_free(a->identity);
	snp_cert_fetcher_free(a->fetcher);
	snp_source_free(a->source);
	/* The verifier borrows the HTTP client. */
	skr_token_verifier_free(a->verifier);
	http_client_free(a->http);
	X509_STORE_free(a->vault_trust);
	free(a->ca_bundle);
	snp_security_context_clear(&a->sc);
	snp_thim_clear(&a->thim);
	pthread_mutex_destroy(&a->source_lock);
	pthread_mutex_destroy(&a->fetcher_lock);
	pthread_mutex_destroy(&a->trust_lock);
	free(a->table_cache_key);
	free(a->table_cache_pem);
	pthread_mutex_destroy(&a->table_cache_lock);
	free(a);
}

int attester_vault_trust(struct skr_attester *a, X509_STORE **out, struct skr_error *err)
{
	X509_STORE *st;
	int r = 0;

	pthread_mutex_lock(&a->trust_lock);
	if (a->vault_trust)
		goto out;
	st = X509_STORE_new();
	if (!st) {
		r = skr_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (a->ca_bundle ? X509_STORE_load_file(st, a->ca_bundle) != 1
	                 : X509_STORE_set_default_paths(st) != 1) {
		X509_STORE_free(st);
		if (a->ca_bundle)
			r = ossl_error_set(err, -EINVAL, "cannot load the CA bundle");
		else
			r = ossl_error_set(err, -EINVAL,
			                   "cannot load the system's CA certificates");
		goto out;
	}
	a->vault_trust = st;
out:
	*out = a->vault_trust;
	pthread_mutex_unlock(&a->trust_lock);
	return r;
}

/* ---------------------------------------------------------------------------------------------
 * Reports
 * ------------------------------------------------------------------------------------------- */

void skr_report_data_for(const uint8_t *runtime, size_t len, uint8_t report_data[64])
{
	static const uint8_t empty = 0;

	memset(report_data, 0, SNP_REPORT_DATA_SIZE);
	/* MAA checks REPORT_DATA[0:32] = SHA-256(runtime data); the anchor zero-fills the rest. */
	SHA256(runtime ? runtime : &empty, runtime ? len : 0, report_data);
}

static int get_report(struct skr_attester *a, const uint8_t report_data[64],
                      uint8_t report[SNP_REPORT_SIZE], struct snp_cert_table *certs,
                      struct skr_error *err)
{
	int r;

	pthread_mutex_lock(&a->source_lock);
	r = snp_source_get_report(a->source, report_data, report, certs, err);
	pthread_mutex_unlock(&a->source_lock);
	return r;
}

int skr_attest_raw(struct skr_attester *a, const uint8_t *runtime, size_t len,
                   uint8_t report[SNP_REPORT_SIZE], struct skr_error *err)
{
	uint8_t report_data[SNP_REPORT_DATA_SIZE];

	if (!runtime && len > 0)
		return skr_error_set(err, -EINVAL, "attest: runtime data pointer is NULL");
	skr_report_data_for(runtime, len, report_data);
	return get_report(a, report_data, report, NULL, err);
}

/* ---------------------------------------------------------------------------------------------
 * Certificate chain for a report (§3.4)
 * ------------------------------------------------------------------------------------------- */

/* A chain with the TCB it endorses and where it came from (for messages). */
struct candidate {
	struct snp_cert_chain *chain;
	uint64_t tcb;
	const char *origin;
};

static void candidate_clear(struct candidate *c)
{
	snp_cert_chain_free(c->chain);
	*c = (struct candidate){0};
}

static int leaf_tcb(const struct snp_cert_chain *chain, uint64_t *tcb, struct skr_error *err)
{
	struct snp_vcek_info info;
	int r = snp_cert_chain_leaf_info(chain, &info, err);

	if (r < 0)
		return r;
	*tcb = info.tcb_raw;
	return 0;
}

static int fetch_chain(struct skr_attester *a, const struct snp_report *report,
                       struct snp_cert_chain **out, struct skr_error *err)
{
	int r;

	pthread_mutex_lock(&a->fetcher_lock);
	r = snp_cert_fetcher_get(a->fetcher, report, out, err);
	pthread_mutex_unlock(&a->fetcher_lock);
	return r;
}

static int candidate_from_fetcher(struct skr_attester *a, const struct snp_report *report,
                                  struct candidate *out, struct skr_error *err)
{
	struct candidate c = {.origin = "the certificate cache"};
	int r;

	r = fetch_chain(a, report, &c.chain, err);
	if (r < 0)
		return skr_error_prefix(err, "certificate cache: ");
	r = leaf_tcb(c.chain, &c.tcb, err);
	if (r < 0) {
		candidate_clear(&c);
		return skr_error_prefix(err, "certificate cache chain: ");
	}
	*out = c;
	return 0;
}

static int candidate_from_thim(const struct skr_attester *a, struct candidate *out,
                               struct skr_error *err)
{
	_cleanup_free_ char *pem = NULL;
	struct candidate c = {.origin = "the security context (THIM)", .tcb = a->thim.tcbm};
	int r;

	if (asprintf(&pem, "%s\n%s", a->thim.vcek_pem ? a->thim.vcek_pem : "",
	             a->thim.chain_pem ? a->thim.chain_pem : "") < 0) {
		pem = NULL;
		return skr_error_set(err, -ENOMEM, "out of memory");
	}
	r = snp_cert_chain_from_pem(pem, strlen(pem), &c.chain, err);
	if (r < 0)
		return skr_error_prefix(err,
		                        "security context host-amd-cert-base64 certificates: ");
	*out = c;
	return 0;
}

static const char table_origin[] = "the platform's certificate table";

static int candidate_from_table(const struct snp_cert_table *table, struct candidate *out,
                                struct skr_error *err)
{
	struct candidate c = {.origin = table_origin};
	int r;

	r = snp_cert_chain_from_table(table, &c.chain, err);
	if (r < 0)
		return skr_error_prefix(err, "platform certificate table: ");
	r = leaf_tcb(c.chain, &c.tcb, err);
	if (r < 0) {
		candidate_clear(&c);
		return skr_error_prefix(err, "platform certificate table: ");
	}
	*out = c;
	return 0;
}

/* Take the ASK and ARK of a chain's PEM (leaf ‖ ASK ‖ ARK): everything after the first cert. */
static const char *pem_after_leaf(const char *pem)
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----";
	const char *first = strstr(pem, begin);

	return first ? strstr(first + sizeof(begin) - 1, begin) : NULL;
}

/* A chain lacking its ASK or ARK (a THIM answer or table with the leaf only) is completed. */
static int candidate_complete(struct skr_attester *a, const struct snp_report *report,
                              struct candidate *c, struct skr_error *err)
{
	_cleanup_(snp_cert_chain_freep) struct snp_cert_chain *fetched = NULL;
	_cleanup_free_ char *pem = NULL;
	const char *rest;
	int r;

	if (snp_cert_chain_is_complete(c->chain))
		return 0;
	if (!a->fetcher)
		return skr_error_set(
		        err, -ENOENT,
		        "the certificate chain from %s lacks the ASK or ARK and no "
		        "certificate cache is configured to complete it (set certcache)",
		        c->origin);
	r = fetch_chain(a, report, &fetched, err);
	if (r < 0)
		return skr_error_prefix(err, "completing the chain from %s: ", c->origin);
	r = snp_cert_chain_to_pem(fetched, &pem, err);
	if (r < 0)
		return skr_error_prefix(err, "completing the chain from %s: ", c->origin);
	/* to_pem() writes leaf ‖ ASK ‖ ARK; the cache's leaf is not ours to add. */
	rest = snp_cert_chain_has_leaf(fetched) ? pem_after_leaf(pem) : pem;
	if (rest) {
		r = snp_cert_chain_add_pem(c->chain, rest, strlen(rest), err);
		if (r < 0)
			return skr_error_prefix(err, "completing the chain from %s: ", c->origin);
	}
	if (!snp_cert_chain_is_complete(c->chain))
		return skr_error_set(err, -ENOENT,
		                     "the certificate chain from %s lacks the ASK or ARK and the "
		                     "certificate cache did not supply them",
		                     c->origin);
	log_debug("attester: completed the chain from %s with the certificate cache's ASK/ARK",
	          c->origin);
	return 0;
}

static int get_parsed_report(struct skr_attester *a, const uint8_t report_data[64],
                             uint8_t raw[SNP_REPORT_SIZE], struct snp_report *parsed,
                             struct snp_cert_table *table, struct skr_error *err)
{
	int r;

	snp_cert_table_clear(table);
	r = get_report(a, report_data, raw, table, err);
	if (r < 0)
		return r;
	r = snp_report_parse(raw, SNP_REPORT_SIZE, parsed, err);
	if (r < 0)
		return skr_error_prefix(err, "SNP report from the %s source: ",
		                        snp_source_kind_name(snp_source_kind_of(a->source)));
	return 0;
}

enum chain_source {
	CHAIN_FROM_TABLE,
	CHAIN_FROM_THIM,
	CHAIN_FROM_FETCHER,
	_CHAIN_SOURCE_MAX,
};

/* What one search for a chain found: the match, or the last mismatch and the first failure. */
struct chain_search {
	struct candidate match;   /* .chain set when a chain's TCB equals REPORTED_TCB */
	struct candidate last;    /* the last chain that did not match (for the message) */
	struct skr_error failure; /* the first source that failed, if any */
	bool tried;               /* at least one source was available */
};

static void chain_search_clear(struct chain_search *s)
{
	candidate_clear(&s->match);
	candidate_clear(&s->last);
	skr_error_clear(&s->failure);
	s->tried = false;
}

/*
 * §3.4 generalized: the sources in order (what the platform returned with the report, the THIM
 * data of the security context, the certificate cache), the first chain whose TCB is the
 * report's REPORTED_TCB wins. The cache is only asked when nothing before it matched, which is
 * the anchor's "refresh". A failing source is remembered and the next one tried.
 */
static void chain_search(struct skr_attester *a, const struct snp_report *report,
                         const struct snp_cert_table *table, struct chain_search *s)
{
	for (int src = 0; src < _CHAIN_SOURCE_MAX && !s->match.chain; src++) {
		struct skr_error e = {0};
		struct candidate c = {0};
		int r;

		switch (src) {
		case CHAIN_FROM_TABLE:
			if (!snp_cert_table_find(table, SNP_CERT_VCEK) &&
			    !snp_cert_table_find(table, SNP_CERT_VLEK))
				continue;
			r = candidate_from_table(table, &c, &e);
			break;
		case CHAIN_FROM_THIM:
			if (!a->have_thim)
				continue;
			r = candidate_from_thim(a, &c, &e);
			break;
		default:
			if (!a->fetcher)
				continue;
			if (s->last.chain)
				log_info("attester: refreshing the certificate chain from the "
				         "certificate cache (reported TCB 0x%016" PRIx64
				         ", certificate TCB 0x%016" PRIx64 " from %s)",
				         report->reported_tcb, s->last.tcb, s->last.origin);
			r = candidate_from_fetcher(a, report, &c, &e);
			break;
		}
		s->tried = true;
		if (r < 0) {
			log_warn("attester: %s", e.msg);
			if (!s->failure.code)
				s->failure = e;
			continue;
		}
		log_debug("attester: certificate TCB 0x%016" PRIx64 " from %s, reported TCB "
		          "0x%016" PRIx64,
		          c.tcb, c.origin, report->reported_tcb);
		if (c.tcb == report->reported_tcb) {
			s->match = c;
		} else {
			candidate_clear(&s->last);
			s->last = c;
		}
	}
}

/* The error for a search that matched nothing; @s->failure is appended when a source failed. */
static int chain_search_error(const struct chain_search *s, const struct snp_report *report,
                              struct skr_error *err)
{
	if (!s->tried)
		return skr_error_set(
		        err, -ENOENT,
		        "no certificate chain for the SNP report: the platform supplied "
		        "none, the security context has no host-amd-cert-base64 and no "
		        "certificate cache is configured (set certcache)");
	if (!s->last.chain)
		return skr_error_set(err, s->failure.code, "%s", s->failure.msg);
	return skr_error_set(err, -ESTALE,
	                     "SNP reported TCB value 0x%016" PRIx64
	                     " doesn't match certificate TCB value 0x%016" PRIx64 " (from %s)%s%s",
	                     report->reported_tcb, s->last.tcb, s->last.origin,
	                     s->failure.code ? "; " : "", s->failure.code ? s->failure.msg : "");
}

/*
 * The cache of the table's chain (attest_internal.h). Its key is every byte of the table (GUID,
 * kind, length and DER of each entry), so a hit means the same input to the same pure
 * computation: the chain parsed from the table, its leaf's TCB and its PEM. Only a chain that
 * the table completed alone is stored (one completed from the certificate cache depends on
 * more than the table).
 */
static int table_cache_key(const struct snp_cert_table *t, uint8_t **out, size_t *out_len)
{
	size_t n = 0, off = 0;
	uint8_t *key;

	for (size_t i = 0; i < t->count && i < SNP_CERT_TABLE_MAX; i++)
		n += sizeof(t->entries[i].guid) + sizeof(uint32_t) + sizeof(uint64_t) +
		     t->entries[i].len;
	key = malloc(n ? n : 1);
	if (!key)
		return -ENOMEM;
	for (size_t i = 0; i < t->count && i < SNP_CERT_TABLE_MAX; i++) {
		const struct snp_cert_table_entry *e = &t->entries[i];
		uint32_t kind = (uint32_t)e->kind;
		uint64_t len = e->len;

		memcpy(key + off, e->guid, sizeof(e->guid));
		off += sizeof(e->guid);
		memcpy(key + off, &kind, sizeof(kind));
		off += sizeof(kind);
		memcpy(key + off, &len, sizeof(len));
		off += sizeof(len);
		if (e->len)
			memcpy(key + off, e->data, e->len);
		off += e->len;
	}
	*out = key;
	*out_len = n;
	return 0;
}

/* 1 and *pem set: this exact table gave a complete chain for @tcb before; 0: not known. */
static int table_cache_get(struct skr_attester *a, const struct snp_cert_table *t, uint64_t tcb,
                           char **pem, struct skr_error *err)
{
	_cleanup_free_ uint8_t *key = NULL;
	size_t key_len;
	int r = 0;

	*pem = NULL;
	if (t->count == 0)
		return 0;
	if (table_cache_key(t, &key, &key_len) < 0)
		return skr_error_set(err, -ENOMEM, "out of memory");
	pthread_mutex_lock(&a->table_cache_lock);
	if (a->table_cache_pem && a->table_cache_tcb == tcb && a->table_cache_key_len == key_len &&
	    memcmp(a->table_cache_key, key, key_len) == 0) {
		*pem = strdup(a->table_cache_pem);
		r = *pem ? 1 : skr_error_set(err, -ENOMEM, "out of memory");
	}
	pthread_mutex_unlock(&a->table_cache_lock);
	return r;
}

/* Remember @pem for table @t (best effort: without memory the next report parses again). */
static void table_cache_put(struct skr_attester *a, const struct snp_cert_table *t, uint64_t tcb,
                            const char *pem)
{
	uint8_t *key = NULL;
	size_t key_len;
	char *copy;

	if (table_cache_key(t, &key, &key_len) < 0)
		return;
	copy = strdup(pem);
	if (!copy) {
		free(key);
		return;
	}
	pthread_mutex_lock(&a->table_cache_lock);
	free(a->table_cache_key);
	free(a->table_cache_pem);
	a->table_cache_key = key;
	a->table_cache_key_len = key_len;
	a->table_cache_pem = copy;
	a->table_cache_tcb = tcb;
	pthread_mutex_unlock(&a->table_cache_lock);
}

int skr_attest_evidence(struct skr_attester *a, const uint8_t *runtime, size_t len,
                        struct skr_evidence *out, struct skr_error *err)
{
	_cleanup_(cert_table_clearp) struct snp_cert_table table = {0};
	uint8_t report_data[SNP_REPORT_DATA_SIZE];
	struct chain_search search = {0};
	struct snp_report report;
	struct skr_evidence e = {0};
	struct candidate *c;
	const char *origin;
	bool table_alone;
	int r;

	memset(out, 0, sizeof(*out));
	if (!runtime && len > 0)
		return skr_error_set(err, -EINVAL, "attest: runtime data pointer is NULL");
	skr_report_data_for(runtime, len, report_data);

	r = get_parsed_report(a, report_data, e.report, &report, &table, err);
	if (r < 0)
		return r;
	/* What chain_search() would find first and candidate_complete() leave as is: known. */
	r = table_cache_get(a, &table, report.reported_tcb, &e.cert_chain_pem, err);
	if (r < 0)
		goto fail;
	if (r > 0) {
		snprintf(e.endorsed_tcb, sizeof(e.endorsed_tcb), "%016" PRIx64,
		         report.reported_tcb);
		origin = "the platform's certificate table (parsed before)";
		goto chain_ready;
	}
	chain_search(a, &report, &table, &search);
	if (!search.match.chain && search.last.chain) {
		/* The platform may have moved to a new TCB between report and chain: retry once. */
		log_info("attester: no certificate chain matches reported TCB 0x%016" PRIx64
		         "; requesting a new report",
		         report.reported_tcb);
		chain_search_clear(&search);
		r = get_parsed_report(a, report_data, e.report, &report, &table, err);
		if (r < 0)
			goto fail;
		chain_search(a, &report, &table, &search);
	}
	if (!search.match.chain) {
		r = chain_search_error(&search, &report, err);
		goto fail;
	}
	c = &search.match;
	origin = c->origin;
	table_alone = c->origin == table_origin && snp_cert_chain_is_complete(c->chain);
	r = candidate_complete(a, &report, c, err);
	if (r < 0)
		goto fail;
	r = snp_cert_chain_to_pem(c->chain, &e.cert_chain_pem, err);
	if (r < 0)
		goto fail;
	snprintf(e.endorsed_tcb, sizeof(e.endorsed_tcb), "%016" PRIx64, c->tcb);
	if (table_alone)
		table_cache_put(a, &table, c->tcb, e.cert_chain_pem);
chain_ready:
	if (a->sc.reference_info_b64 && *a->sc.reference_info_b64) {
		e.uvm_reference_info = strdup(a->sc.reference_info_b64);
		if (!e.uvm_reference_info) {
			r = skr_error_set(err, -ENOMEM, "out of memory");
			goto fail;
		}
	}
	log_debug("attester: evidence with the chain from %s (TCB %s)", origin, e.endorsed_tcb);
	chain_search_clear(&search);
	*out = e;
	return 0;
fail:
	chain_search_clear(&search);
	skr_evidence_clear(&e);
	return r;
}

void skr_evidence_clear(struct skr_evidence *e)
{
	if (!e)
		return;
	free(e->cert_chain_pem);
	free(e->uvm_reference_info);
	memset(e, 0, sizeof(*e));
}

/* ---------------------------------------------------------------------------------------------
 * MAA
 * ------------------------------------------------------------------------------------------- */

/* The runtime data goes out with dataType JSON: MAA would refuse anything else with a 400. */
static int runtime_check_json(const uint8_t *runtime, size_t len, struct skr_error *err)
{
	_cleanup_json_ json_object *obj = NULL;
	struct skr_error e = {0};

	if (!runtime || len == 0)
		return skr_error_set(err, -EINVAL,
		                     "runtime_data is empty: it is sent to MAA with dataType JSON "
		                     "and must be a JSON text (e.g. {})");
	if (json_parse((const char *)runtime, len, "runtime_data", &obj, &e) < 0 || !obj)
		return skr_error_set(err, e.code == -ENOMEM ? -ENOMEM : -EINVAL,
		                     "%s (it is sent to MAA with dataType JSON)",
		                     e.code ? e.msg : "runtime_data is JSON null");
	return 0;
}

/*
 * Record the token's jti, and check its "nonce" claim, when it has one, against the request's
 * (devcloud echoes it as a string; a number is accepted too): a token that answers another
 * request is refused.
 */
static int token_check_nonce(const char *token, uint64_t nonce, struct skr_attest_info *info,
                             struct skr_error *err)
{
	_cleanup_jwt_ struct jwt j = {0};
	struct skr_error e = {0};
	char want[24], got[40];
	const char *jti, *text;
	json_object *v;
	size_t i = 0;
	int r;

	r = jwt_parse(token, strlen(token), &j, &e);
	if (r < 0)
		return skr_error_set(err, r == -ENOMEM ? r : -EPROTO, "MAA token: %s", e.msg);
	jti = jwt_payload_string(&j, "jti");
	if (info && jti)
		snprintf(info->jti, sizeof(info->jti), "%s", jti);
	if (!json_object_object_get_ex(j.payload, "nonce", &v))
		return 0;
	snprintf(want, sizeof(want), "%" PRIu64, nonce);
	if (json_object_is_type(v, json_type_string) || json_object_is_type(v, json_type_int)) {
		text = json_object_is_type(v, json_type_string)
		               ? json_object_get_string(v)
		               : json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
		if (text && strcmp(text, want) == 0)
			return 0;
	} else {
		text = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
	}
	/* Untrusted text in a message: bounded and printable. */
	for (; text && *text && i + 1 < sizeof(got); text++)
		got[i++] = *text >= 0x20 && *text < 0x7f ? *text : '?';
	got[i] = '\0';
	return skr_error_set(err, -EPROTO,
	                     "MAA token nonce %s is not the request's %s: the token answers "
	                     "another request",
	                     got, want);
}

int skr_attest_maa_ex(struct skr_attester *a, const char *maa_endpoint, const uint8_t *runtime,
                      size_t len, char **token, struct skr_attest_info *info, struct skr_error *err)
{
	struct skr_evidence e = {0};
	_cleanup_free_ char *body = NULL, *base = NULL;
	uint8_t md[SHA256_DIGEST_LENGTH];
	uint64_t nonce;
	int r;

	*token = NULL;
	if (info)
		memset(info, 0, sizeof(*info));
	/* A bad endpoint or runtime data is the caller's error: say so before touching the device. */
	r = maa_base_url(maa_endpoint, &base, err);
	if (r < 0)
		return r;
	r = runtime_check_json(runtime, len, err);
	if (r < 0)
		return r;
	r = skr_attest_evidence(a, runtime, len, &e, err);
	if (r < 0)
		return r;
	if (info) {
		SHA256(e.report, sizeof(e.report), md);
		hex_encode(md, sizeof(md), info->report_sha256);
	}
	/* The anchor's random u64 (2^64-1 is reserved, see maa_request_build()). */
	do {
		if (RAND_bytes((unsigned char *)&nonce, sizeof(nonce)) != 1) {
			skr_evidence_clear(&e);
			return ossl_error_set(err, -EIO, "MAA nonce");
		}
	} while (nonce == UINT64_MAX);
	r = maa_request_build(e.report, sizeof(e.report), e.cert_chain_pem, e.uvm_reference_info,
	                      runtime, len, nonce, &body, err);
	skr_evidence_clear(&e);
	if (r < 0)
		return r;

	r = maa_attest(a->http, maa_endpoint, body, token, err);
	if (r < 0)
		return r;
	r = token_check_nonce(*token, nonce, info, err);
	if (r < 0) {
		secure_free(*token, strlen(*token));
		*token = NULL;
		return r;
	}
	return 0;
}

int skr_attest_maa(struct skr_attester *a, const char *maa_endpoint, const uint8_t *runtime,
                   size_t len, char **token, struct skr_error *err)
{
	return skr_attest_maa_ex(a, maa_endpoint, runtime, len, token, NULL, err);
}

int skr_token_verify(struct skr_attester *a, const char *maa_endpoint, const char *token,
                     char **claims_json, struct skr_error *err)
{
	_cleanup_free_ char *issuer = NULL;
	int r;

	*claims_json = NULL;
	r = maa_base_url(maa_endpoint, &issuer, err);
	if (r < 0)
		return r;
	if (!token)
		return skr_error_set(err, -EINVAL, "MAA token is missing");
	r = token_verifier_verify(a->verifier, issuer, token, claims_json, err);
	if (r < 0)
		return skr_error_prefix(err, "MAA token: ");
	return 0;
}
