/* SPDX-License-Identifier: MIT */
/*
 * devcloud: a local, MAA-compatible attestation service (what Azurite is for storage), so the
 * whole attestation chain runs without Azure. Private to tools/devcloud and its tests.
 *
 * Layout: the state directory (state.c, pki.c, settings.c), the loaded service (service.c),
 * a transport-free request/response model (response.c) dispatched through one route table
 * (routes.c) to handlers that are plain functions (attest.c, metadata.c, kds.c, keyvault.c,
 * identity.c), and the libmicrohttpd glue (server.c). Three listeners: attest (HTTPS: MAA, KDS,
 * THIM, Entra token endpoint), kv (HTTPS: key vault) and imds (plain HTTP: managed identity).
 *
 * State directory (created by `devcloud init`, mode 0700):
 *   ca.pem, ca-key.pem            local CA (EC P-256), key 0600
 *   server.pem, server-key.pem    TLS certificate for localhost, 127.0.0.1, ::1 and --hostname
 *   signing.pem, signing-key.pem  token signing key (RSA-2048), certificate issued by the CA
 *   platform/                     the virtual SEV-SNP platform (snp_virtual_create)
 *   devcloud.json                 settings (compliance status, host names, platform summary)
 *   endpoints.json                written by `devcloud serve` once it listens
 *   vault.pem, vault-key.pem      key vault TLS + release-signing certificate (RSA-2048, issued
 *                                 by the CA for the TLS names)
 *   identity.json                 tenant, managed identities, workload applications (ids only)
 *   identity-key.pem              signs access tokens and federated assertions (RSA-2048)
 *   keystore.key                  32-byte AES-256-GCM key sealing the stored keys (0600)
 *   keys/NAME.VERSION.sealed      one sealed key version each (keystore.c)
 * The vault, identity and keystore files are created by `init`, or on the first `serve` of a
 * state made before they existed.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "secret.h"
#include "skr.h"
#include "skr_error.h"

#define DEVCLOUD_DEFAULT_MAX_BODY (1024u * 1024u)
/*
 * The largest --max-body: the MAA request parser's own cap (maa_request.c MAA_REQUEST_MAX_BODY,
 * kept equal by test_devcloud_attest). Above it an attest body under --max-body would be
 * refused by the parser with a 400 instead of the 413 a body over the limit gets.
 */
#define DEVCLOUD_MAX_BODY_LIMIT (2u * 1024u * 1024u)
#define DEVCLOUD_DEFAULT_TOKEN_LIFETIME 28800L /* 8 h, as MAA's sample tokens */
#define DEVCLOUD_DEFAULT_COMPLIANCE "azure-compliant-uvm"
#define DEVCLOUD_HOSTNAMES_MAX 32
#define DEVCLOUD_TRUST_ROOTS_MAX 16
#define DEVCLOUD_SETTINGS_VERSION 1
#define DEVCLOUD_IDENTITY_VERSION 1
/* IMDS answers expires_in 86399 (protocols.md §6.1), Entra 3599 (§6.2). */
#define DEVCLOUD_IMDS_TOKEN_LIFETIME 86399L
#define DEVCLOUD_ENTRA_TOKEN_LIFETIME 3599L
#define DEVCLOUD_FEDERATED_AUDIENCE "api://AzureADTokenExchange"
#define DEVCLOUD_DEFAULT_WORKLOAD_SUBJECT "system:serviceaccount:default:workload"
#define DEVCLOUD_IDENTITIES_MAX 16
#define DEVCLOUD_SUBJECTS_MAX 8

/*
 * The attestation policy devcloud "runs": it permits every verified report and issues the
 * claims derived from it. x-ms-policy-hash = b64url-nopad(SHA-256(this text)), as MAA hashes
 * the policy it applied. This is MAA's default SEV-SNP policy text.
 */
#define DEVCLOUD_POLICY_TEXT "version= 1.0;authorizationrules{=> permit();};issuancerules{};"

/* ---------------------------------------------------------------------------------------------
 * Settings: devcloud.json (settings.c)
 * ------------------------------------------------------------------------------------------- */

struct devcloud_settings {
	char *compliance_status;
	char *hostnames[DEVCLOUD_HOSTNAMES_MAX]; /* every name of the TLS certificate */
	size_t n_hostnames;
	enum snp_product product;
	uint32_t report_version;
	bool debuggable;
	uint8_t host_data[32];
};

int devcloud_settings_load(const char *path, struct devcloud_settings *out, struct skr_error *err);
int devcloud_settings_save(const char *path, const struct devcloud_settings *s,
                           struct skr_error *err);
json_object *devcloud_settings_to_json(const struct devcloud_settings *s);
void devcloud_settings_clear(struct devcloud_settings *s);

/* ---------------------------------------------------------------------------------------------
 * Local PKI (pki.c)
 * ------------------------------------------------------------------------------------------- */

enum devcloud_cert_kind {
	DEVCLOUD_CERT_CA,
	DEVCLOUD_CERT_TLS_SERVER,
	DEVCLOUD_CERT_TOKEN_SIGNING,
};

/*
 * Issue a certificate for @key: self-signed when @issuer is NULL (the CA), else signed by
 * @issuer_key. @names are the subjectAltNames of a TLS server certificate (DNS names or IP
 * addresses, told apart by inet_pton).
 */
int devcloud_pki_issue(enum devcloud_cert_kind kind, const char *common_name, EVP_PKEY *key,
                       X509 *issuer, EVP_PKEY *issuer_key, const char *const *names, size_t n_names,
                       int validity_days, X509 **out, struct skr_error *err);
/* PEM of a private key (PKCS#8, unencrypted) in locked memory. */
int devcloud_pki_key_pem(EVP_PKEY *key, struct secret **out, struct skr_error *err);
int devcloud_pki_cert_pem(X509 *cert, char **out, struct skr_error *err);
int devcloud_pki_load_cert(const char *path, X509 **out, struct skr_error *err);
int devcloud_pki_load_key(const char *path, EVP_PKEY **out, struct skr_error *err);
/* b64url-nopad(SHA-256(DER)): the kid devcloud gives its signing key. */
int devcloud_pki_thumbprint(X509 *cert, char **out, struct skr_error *err);
/* Standard base64 of the DER (a JWK x5c entry). */
int devcloud_pki_cert_b64(X509 *cert, char **out, struct skr_error *err);

/* ---------------------------------------------------------------------------------------------
 * `devcloud init` (state.c)
 * ------------------------------------------------------------------------------------------- */

struct devcloud_init_options {
	const char *state_dir;
	const char *hostnames[DEVCLOUD_HOSTNAMES_MAX]; /* extra names besides localhost */
	size_t n_hostnames;
	enum snp_product product;      /* default Milan */
	uint32_t report_version;       /* default 3 */
	uint8_t host_data[32];         /* zero unless given */
	const char *compliance_status; /* default azure-compliant-uvm */
	bool debuggable;
	bool force;
};

void devcloud_init_options_default(struct devcloud_init_options *o);
/* Create the state directory; *summary (may be NULL) describes what was made. */
int devcloud_state_init(const struct devcloud_init_options *o, json_object **summary,
                        struct skr_error *err);

/* ---------------------------------------------------------------------------------------------
 * The loaded service (service.c)
 * ------------------------------------------------------------------------------------------- */

struct devcloud_serve_options {
	const char *state_dir;
	const char *trust_roots[DEVCLOUD_TRUST_ROOTS_MAX]; /* PEM files (AMD ask_ark_*.pem …) */
	size_t n_trust_roots;
	size_t max_body;     /* default DEVCLOUD_DEFAULT_MAX_BODY */
	long token_lifetime; /* seconds, default DEVCLOUD_DEFAULT_TOKEN_LIFETIME */
};

void devcloud_serve_options_default(struct devcloud_serve_options *o);

/* ---------------------------------------------------------------------------------------------
 * Identity: identity.json and the tokens devcloud issues (identity.c)
 * ------------------------------------------------------------------------------------------- */

/* A managed identity (IMDS) or an application with federated credentials (workload identity). */
struct devcloud_identity_app {
	char *client_id;
	char *object_id;
	char *subjects[DEVCLOUD_SUBJECTS_MAX]; /* federated credential subjects (applications) */
	size_t n_subjects;
};

struct devcloud_identity {
	char *tenant_id;
	char *oidc_issuer;  /* iss of federated assertions (`devcloud federated-token`) */
	char *token_issuer; /* iss of access tokens: https://sts.devcloud.local/<tenant>/ */
	struct devcloud_identity_app managed[DEVCLOUD_IDENTITIES_MAX]; /* [0]: the default */
	size_t n_managed;
	struct devcloud_identity_app apps[DEVCLOUD_IDENTITIES_MAX];
	size_t n_apps;
};

/* Write a new identity.json with random GUIDs: one managed identity, one application whose
 * federated credential is DEVCLOUD_DEFAULT_WORKLOAD_SUBJECT. */
int devcloud_identity_create(const char *path, struct skr_error *err);
int devcloud_identity_load(const char *path, struct devcloud_identity *out, struct skr_error *err);
void devcloud_identity_clear(struct devcloud_identity *id);
json_object *devcloud_identity_to_json(const struct devcloud_identity *id);

/*
 * A federated assertion as a Kubernetes service-account token issuer would sign it: iss =
 * identity.oidc_issuer, sub = @subject, aud = @audience (NULL = api://AzureADTokenExchange),
 * iat/nbf = now, exp = now + @lifetime, signed RS256 with identity-key.pem of @state_dir.
 */
int devcloud_federated_token(const char *state_dir, const char *subject, const char *audience,
                             long lifetime, char **jwt, struct skr_error *err);

/* ---------------------------------------------------------------------------------------------
 * Compact JWS, RS256 (jws.c): devcloud's own tokens and release responses
 * ------------------------------------------------------------------------------------------- */

#define DEVCLOUD_JWS_MAX (64u * 1024)

int devcloud_jws_sign(EVP_PKEY *key, json_object *header, json_object *payload, char **out,
                      struct skr_error *err);
/*
 * Verify @token (at most DEVCLOUD_JWS_MAX bytes, header alg RS256) with @key and return its
 * decoded header and payload objects. Malformed → -EINVAL, bad signature → -EBADMSG.
 */
int devcloud_jws_verify(EVP_PKEY *key, const char *token, json_object **header,
                        json_object **payload, struct skr_error *err);

/* ---------------------------------------------------------------------------------------------
 * Key vault: import bodies (kv_import.c), sealed store (keystore.c), handlers (keyvault.c)
 * ------------------------------------------------------------------------------------------- */

enum devcloud_kv_kty {
	DEVCLOUD_KTY_OCT = 1, /* material: raw bytes */
	DEVCLOUD_KTY_RSA,     /* material: PKCS#8 DER */
	DEVCLOUD_KTY_EC,      /* material: PKCS#8 DER */
};

#define DEVCLOUD_KV_NAME_MAX 127 /* Key Vault: 1-127 of [0-9a-zA-Z-] */
#define DEVCLOUD_KV_TAGS_MAX 15
#define DEVCLOUD_KV_VERSION_LEN 32

/* A validated import (PUT /keys/{name} body, protocols.md §5.1). */
struct devcloud_kv_import {
	enum devcloud_kv_kty kty;
	bool hsm;
	char *key_ops[SKR_KEY_OPS_MAX]; /* as sent, or the type's defaults when absent */
	size_t n_key_ops;
	unsigned bits;           /* oct key size, RSA modulus, EC field */
	json_object *public_jwk; /* n, e or crv, x, y */
	struct secret *material;
	bool exportable;
	bool enabled;
	bool has_policy;
	char *policy_json; /* release_policy.data decoded */
	size_t policy_len;
	char *policy_content_type;
	bool immutable;
	json_object *tags; /* object of strings, or NULL */
};

/*
 * Parse and validate an import body (untrusted, fuzzed): the JWK (sizes; RSA and EC keys
 * checked by OpenSSL), key_ops, attributes, release_policy (data padded or unpadded b64url or
 * standard base64; the policy parsed with skr_policy_parse), tags. Exportable keys need a
 * release policy. Errors name the field (-EINVAL).
 */
int devcloud_kv_import_parse(const char *body, size_t len, struct devcloud_kv_import *out,
                             struct skr_error *err);
void devcloud_kv_import_clear(struct devcloud_kv_import *imp);
const char *devcloud_kv_kty_name(enum devcloud_kv_kty kty, bool hsm);
/* Key Vault's key names: 1-127 characters of 0-9, a-z, A-Z and '-'. */
bool devcloud_kv_name_valid(const char *name);

/* One stored key version. Never changes nor goes away while the store lives. */
struct devcloud_kv_key {
	char *name;
	char version[DEVCLOUD_KV_VERSION_LEN + 1];
	uint64_t seq; /* import order: the latest version has the highest */
	int64_t created, updated;
	struct devcloud_kv_import imp;
	struct skr_policy *policy; /* parsed release policy, or NULL */
};

struct devcloud_keystore;

/* Open DIR/keys (sealed with DIR/keystore.key, both created when missing). Unreadable or
 * tampered files are logged and skipped. */
int devcloud_keystore_open(const char *state_dir, struct devcloud_keystore **out,
                           struct skr_error *err);
void devcloud_keystore_free(struct devcloud_keystore *ks);
/*
 * Seal @imp as a new version of @name, write it crash-safely, then make it the latest. On
 * success @imp is moved into the store (left cleared) and *out is the new version. A key whose
 * latest version has an immutable release policy accepts only the same policy, again immutable
 * (-EPERM otherwise).
 */
int devcloud_keystore_add(struct devcloud_keystore *ks, const char *name,
                          struct devcloud_kv_import *imp, time_t now,
                          const struct devcloud_kv_key **out, struct skr_error *err);
/* @version NULL = the latest. NULL when there is no such key. */
const struct devcloud_kv_key *devcloud_keystore_find(struct devcloud_keystore *ks, const char *name,
                                                     const char *version);
size_t devcloud_keystore_count(struct devcloud_keystore *ks);

/* Read-only after devcloud_open(): handlers run concurrently on MHD's threads. */
struct devcloud {
	char *state_dir;
	struct devcloud_settings settings;
	size_t max_body;
	long token_lifetime;
	EVP_PKEY *signing_key;
	char *kid;
	char *x5c[2]; /* signing certificate, CA: standard base64 DER */
	char *policy_hash;
	struct snp_trust_store *trust;
	struct snp_virtual *platform;
	struct devcloud_platform_certs {
		bool vlek;         /* the platform signs with a VLEK: no VCEK to serve */
		uint8_t *leaf_der; /* VCEK/VLEK */
		size_t leaf_der_len;
		char *leaf_pem;
		char *chain_pem; /* ASK ‖ ARK, KDS cert_chain order */
		uint64_t tcb;    /* the leaf's TCB_VERSION */
	} certs;
	struct secret *tls_key_pem;
	char *tls_cert_pem;
	/* identity (identity.c) */
	struct devcloud_identity identity;
	EVP_PKEY *identity_key;
	char *identity_kid;
	char *www_authenticate; /* a vault 401's challenge */
	/* key vault (keyvault.c) */
	struct devcloud_vault {
		EVP_PKEY *key;        /* vault-key.pem: TLS and release JWS (RS256) */
		char *x5c[2];         /* vault.pem, CA: standard base64 DER */
		char *thumbprint_hex; /* SHA-1 of vault.pem: the JWS kid */
		char *x5t, *x5t_s256; /* b64url-nopad SHA-1 / SHA-256 */
		struct secret *tls_key_pem;
		char *tls_cert_pem;
		struct devcloud_keystore *store;     /* internally locked */
		struct skr_token_verifier *verifier; /* issuers' JWKS over HTTPS, trusting ca.pem */
	} vault;
};

int devcloud_open(const struct devcloud_serve_options *o, struct devcloud **out,
                  struct skr_error *err);
void devcloud_free(struct devcloud *dc);

/* ---------------------------------------------------------------------------------------------
 * Requests, responses and routes (response.c, routes.c)
 * ------------------------------------------------------------------------------------------- */

struct devcloud_kv {
	const char *key;
	const char *value; /* NULL for a query key without '=' */
};

struct devcloud_request {
	const char *method;
	const char *path; /* without the query string */
	const struct devcloud_kv *query;
	size_t n_query;
	const struct devcloud_kv *headers;
	size_t n_headers;
	const char *body;
	size_t body_len;
	size_t content_length; /* announced or received size, even when the body was not read */
};

/* First value of a query argument / header (case-insensitive name), or NULL. */
const char *devcloud_request_query(const struct devcloud_request *req, const char *key,
                                   bool *present);
const char *devcloud_request_header(const struct devcloud_request *req, const char *name);

struct devcloud_response {
	unsigned status;
	const char *content_type; /* static string */
	const char *allow;        /* Allow header of a 405, static string */
	const char *cache_control;
	const char *www_authenticate; /* WWW-Authenticate of a 401; owned by struct devcloud */
	char *body;                   /* malloc'ed */
	size_t body_len;
	bool secret_body; /* erase before freeing (tokens) */
};

/* Each returns 0, or -ENOMEM after which the server answers 500. */
int devcloud_response_json(struct devcloud_response *resp, unsigned status, json_object *obj);
int devcloud_response_bytes(struct devcloud_response *resp, unsigned status,
                            const char *content_type, const void *data, size_t len);
/* MAA's error shape: {"error":{"code":@code,"message":...}} */
int devcloud_response_error(struct devcloud_response *resp, unsigned status, const char *code,
                            const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void devcloud_response_clear(struct devcloud_response *resp);

/*
 * obj[@key] = @v, taking @v's reference: -ENOMEM (and @v put) when @v is NULL (a failed
 * json_object_new_*) or the add fails, so a chain of adds needs one check. The one helper for
 * every JSON document devcloud builds.
 */
int devcloud_json_add(json_object *obj, const char *key, json_object *v);

typedef int (*devcloud_handler_fn)(struct devcloud *dc, const struct devcloud_request *req,
                                   struct devcloud_response *resp);

enum devcloud_match {
	DEVCLOUD_MATCH_EXACT,
	DEVCLOUD_MATCH_EXACT_NOCASE, /* MAA's paths are case-insensitive */
	DEVCLOUD_MATCH_PREFIX,
	DEVCLOUD_MATCH_SUFFIX, /* "/{tenant}/oauth2/v2.0/token" */
};

/* Which listener a route belongs to. */
enum devcloud_service {
	DEVCLOUD_SERVICE_ATTEST = 0, /* HTTPS --attest-port: MAA, KDS, THIM, Entra token */
	DEVCLOUD_SERVICE_KV,         /* HTTPS --kv-port: key vault */
	DEVCLOUD_SERVICE_IMDS,       /* plain HTTP --imds-port: managed identity tokens */
};

struct devcloud_route {
	const char *method;
	const char *path;
	enum devcloud_match match;
	devcloud_handler_fn handler;
	enum devcloud_service service;
};

extern const struct devcloud_route devcloud_routes[];
extern const size_t devcloud_routes_count;

/* Route on @service: a handler, or 404 for an unknown path, 405 (with Allow) for a wrong
 * method. devcloud_dispatch() is the attest service's. */
int devcloud_dispatch_service(struct devcloud *dc, enum devcloud_service service,
                              const struct devcloud_request *req, struct devcloud_response *resp);
int devcloud_dispatch(struct devcloud *dc, const struct devcloud_request *req,
                      struct devcloud_response *resp);

/* ---------------------------------------------------------------------------------------------
 * Issuer, evidence, claims, token (issuer.c, evidence.c, claims.c, token.c)
 * ------------------------------------------------------------------------------------------- */

/*
 * "https://" + @host when @host (a Host header: name[:port]) names the TLS certificate
 * (case-insensitive); the port, if any, must be 1..65535 and is kept.
 */
int devcloud_issuer_from_host(const struct devcloud_settings *s, const char *host, char **out,
                              struct skr_error *err);

/* What a verified report tells. */
struct devcloud_evidence {
	struct snp_report report;
	enum snp_product product;
	json_object *runtime; /* parsed JSON runtime data, or NULL */
};

/*
 * The checks of MAA's SEV-SNP attestation: exact report size, parse, certificate chain,
 * signature/TCB/hwID/root against @trust, REPORT_DATA[0:32] == SHA-256(@runtime) when
 * @have_runtime, and the runtime data parsed when @runtime_is_json. REPORT_DATA[32:64] is not
 * checked (see devcloud(1) notes in main.c).
 */
int devcloud_evidence_verify(const struct snp_trust_store *trust, const uint8_t *report,
                             size_t report_len, const char *chain_pem, size_t chain_len,
                             bool have_runtime, const uint8_t *runtime, size_t runtime_len,
                             bool runtime_is_json, struct devcloud_evidence *out,
                             struct skr_error *err);
void devcloud_evidence_clear(struct devcloud_evidence *e);

/* Add every x-ms-sevsnpvm-* claim of protocols.md §1.4 for @r (svn values from REPORTED_TCB
 * decoded with @product's layout). */
int devcloud_claims_add_report(json_object *claims, const struct snp_report *r,
                               enum snp_product product);
/* The claims of one attestation besides iss/iat/nbf/exp/jti (those are the token's). */
int devcloud_claims_build(const struct devcloud_evidence *ev, const char *compliance_status,
                          const char *policy_hash, const char *nonce, json_object **out);

/* Add iss, iat, nbf, exp, jti to @claims and sign it RS256; *jwt malloc'ed (a secret). */
int devcloud_token_sign(const struct devcloud *dc, const char *issuer, json_object *claims,
                        time_t now, char **jwt, struct skr_error *err);
/* b64url-nopad(SHA-256(@text)). */
int devcloud_policy_hash(const char *text, char **out);

/* ---------------------------------------------------------------------------------------------
 * Handlers (attest.c, metadata.c, kds.c)
 * ------------------------------------------------------------------------------------------- */

/*
 * The MAA attest operation without HTTP: body + Host header → status and JSON body
 * (200 {"token"}, 400/413 {"error"}). Returns 0 or -ENOMEM. As MAA does, a report that fails
 * verification (chain, signature, REPORT_DATA) is a 400 InvalidParameter, not a 403. Unlike
 * MAA, any api-version value is accepted (only its absence is refused).
 */
int devcloud_attest(struct devcloud *dc, const char *body, size_t len, size_t content_length,
                    const char *host, struct devcloud_response *resp);

int devcloud_handle_attest(struct devcloud *dc, const struct devcloud_request *req,
                           struct devcloud_response *resp);
int devcloud_handle_openid_configuration(struct devcloud *dc, const struct devcloud_request *req,
                                         struct devcloud_response *resp);
int devcloud_handle_jwks(struct devcloud *dc, const struct devcloud_request *req,
                         struct devcloud_response *resp);
/* Fill dc->certs from dc->platform (kds.c). */
int devcloud_platform_certs_load(struct devcloud *dc, struct skr_error *err);
void devcloud_platform_certs_clear(struct devcloud_platform_certs *c);
int devcloud_handle_kds(struct devcloud *dc, const struct devcloud_request *req,
                        struct devcloud_response *resp);
int devcloud_handle_thim(struct devcloud *dc, const struct devcloud_request *req,
                         struct devcloud_response *resp);

/* Key vault (keyvault.c): PUT import, GET key bundle, POST …/release. */
int devcloud_handle_kv_put(struct devcloud *dc, const struct devcloud_request *req,
                           struct devcloud_response *resp);
int devcloud_handle_kv_get(struct devcloud *dc, const struct devcloud_request *req,
                           struct devcloud_response *resp);
int devcloud_handle_kv_post(struct devcloud *dc, const struct devcloud_request *req,
                            struct devcloud_response *resp);
/* Load vault.pem/vault-key.pem (issued now when missing), the keystore and the verifier. */
int devcloud_vault_open(struct devcloud *dc, struct skr_error *err);
/* `devcloud init`: vault.pem/vault-key.pem for @s's host names, keystore.key and keys/. */
int devcloud_vault_state_init(const char *state_dir, const struct devcloud_settings *s,
                              struct skr_error *err);
void devcloud_vault_clear(struct devcloud_vault *v);

/* Identity (identity.c): IMDS GET /metadata/identity/oauth2/token, Entra POST
 * /{tenant}/oauth2/v2.0/token. */
int devcloud_handle_imds_token(struct devcloud *dc, const struct devcloud_request *req,
                               struct devcloud_response *resp);
int devcloud_handle_entra_token(struct devcloud *dc, const struct devcloud_request *req,
                                struct devcloud_response *resp);
/* Load identity.json and identity-key.pem (created when missing). */
int devcloud_identity_open(struct devcloud *dc, struct skr_error *err);
/* `devcloud init`: create identity.json and identity-key.pem; summary gains "identity". */
int devcloud_identity_state_init(const char *state_dir, json_object *summary,
                                 struct skr_error *err);
/* An access token for @resource and identity @who, RS256 with identity-key.pem. */
int devcloud_access_token_issue(const struct devcloud *dc, const struct devcloud_identity_app *who,
                                const char *resource, long lifetime, time_t now, char **token,
                                struct skr_error *err);
/*
 * Check an "Authorization" header value: "Bearer <token>" signed by identity-key.pem, iss =
 * identity.token_issuer, aud https://vault.azure.net or https://managedhsm.azure.net (trailing
 * '/' tolerated), exp/nbf with 60 s skew. -EACCES with the reason otherwise.
 */
int devcloud_access_token_check(const struct devcloud *dc, const char *authorization, time_t now,
                                struct skr_error *err);

/* ---------------------------------------------------------------------------------------------
 * HTTPS server (server.c)
 * ------------------------------------------------------------------------------------------- */

struct devcloud_server;

/*
 * Parse --listen: a numeric loopback address (127.0.0.0/8 or ::1) or "localhost". Anything
 * else is refused with -EPERM (not loopback) or -EINVAL (not an address).
 */
int devcloud_listen_parse(const char *s, int *family, uint8_t addr[16], struct skr_error *err);

/*
 * @in (a request path or method, client-controlled) as one printable log/message token: bytes
 * outside '!'..'~' and '%' itself become %XX, so a decoded "%0A" can never start a forged log
 * line and an escaped byte is never mistaken for a literal one. Cut with "..." to fit @size.
 */
void devcloud_log_escape(const char *in, char *out, size_t size);

/* Requests with more headers (or query parameters) than this are refused (431 / 414). */
#define DEVCLOUD_MAX_HEADERS 64

int devcloud_server_start(struct devcloud *dc, const char *listen, uint16_t port,
                          struct devcloud_server **out, struct skr_error *err);
/* A listener for @service: attest and kv over HTTPS (kv with vault.pem), imds plain HTTP. */
int devcloud_server_start_service(struct devcloud *dc, enum devcloud_service service,
                                  const char *listen, uint16_t port, struct devcloud_server **out,
                                  struct skr_error *err);
uint16_t devcloud_server_port(const struct devcloud_server *srv);
void devcloud_server_stop(struct devcloud_server *srv);

/* ---------------------------------------------------------------------------------------------
 * Offline verification (verify_report.c)
 * ------------------------------------------------------------------------------------------- */

struct devcloud_verify_options {
	const char *report_path; /* raw 1184 bytes or hex */
	const char *chain_path;  /* PEM leaf, ASK, ARK */
	const char *trust_roots[DEVCLOUD_TRUST_ROOTS_MAX];
	size_t n_trust_roots;
	const char *runtime_path; /* optional */
};

int devcloud_verify_report(const struct devcloud_verify_options *o, json_object **claims,
                           struct skr_error *err);
