/* SPDX-License-Identifier: MIT */
/*
 * Private to libskr: the attester's state, shared by attest.c (reports, evidence, MAA) and
 * release.c (secure key release through the same attester).
 *
 * Thread safety: see attest.c. What release.c uses is either thread-safe by itself (the HTTP
 * client, the identity, the KEK pool, the token verifier) or read-only after creation, except
 * the vault trust store, which is built once on first use under trust_lock.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>

#include <openssl/x509.h>

#include "skr.h"

struct http_client;
struct kek_pool;

struct skr_attester {
	/*
	 * Two independent locks: a certificate download (KDS/THIM, retries and back-off) must
	 * not stall report requests, which need only the device.
	 */
	pthread_mutex_t source_lock; /* source */
	struct snp_source *source;
	pthread_mutex_t fetcher_lock;     /* fetcher */
	struct snp_cert_fetcher *fetcher; /* NULL when certcache.type is NONE */

	struct http_client *http;            /* thread-safe */
	struct skr_token_verifier *verifier; /* thread-safe; uses http */
	struct skr_identity *identity;       /* thread-safe */
	struct kek_pool *kek_pool;           /* thread-safe */

	/* Trust anchors for the vault's release signatures (x5c), built on first release. */
	pthread_mutex_t trust_lock;
	X509_STORE *vault_trust;
	char *ca_bundle; /* NULL = the system's default paths */

	/* Read-only after creation. */
	struct snp_security_context sc;
	bool have_thim;
	struct snp_thim thim;

	/*
	 * The evidence chain (PEM, TCB) last built from the platform's certificate table alone,
	 * keyed by the table's exact bytes (attest.c): a table that differs in any byte is
	 * parsed again. Parsing it costs three certificates and an RSA-4096 signature check on
	 * every report, for a table that changes only with the platform's TCB.
	 */
	pthread_mutex_t table_cache_lock;
	uint8_t *table_cache_key;
	size_t table_cache_key_len;
	char *table_cache_pem;
	uint64_t table_cache_tcb;
};

/*
 * The store that release signatures must chain to: the configured CA bundle, else OpenSSL's
 * default paths. Built once; the reference stays owned by the attester (X509_STORE is safe for
 * concurrent verifications).
 */
int attester_vault_trust(struct skr_attester *a, X509_STORE **out, struct skr_error *err);
