/* SPDX-License-Identifier: MIT */
/*
 * devcloud: a local, MAA-compatible attestation service (what Azurite is for storage), so the
 * whole attestation chain runs without Azure. Private to tools/devcloud and its tests.
 *
 * Layout: the state directory (state.c, pki.c, settings.c), the loaded service (service.c),
 * a transport-free request/response model (response.c) dispatched through one route table
 * (routes.c) to handlers that are plain functions (attest.c, metadata.c, kds.c), and the
 * libmicrohttpd glue (server.c). Later services (key vault, identity) add a file and a route.
 *
 * State directory (created by `devcloud init`, mode 0700):
 *   ca.pem, ca-key.pem            local CA (EC P-256), key 0600
 *   server.pem, server-key.pem    TLS certificate for localhost, 127.0.0.1, ::1 and --hostname
 *   signing.pem, signing-key.pem  token signing key (RSA-2048), certificate issued by the CA
 *   platform/                     the virtual SEV-SNP platform (snp_virtual_create)
 *   devcloud.json                 settings (compliance status, host names, platform summary)
 *   endpoints.json                written by `devcloud serve` once it listens
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
#define DEVCLOUD_DEFAULT_TOKEN_LIFETIME 28800L /* 8 h, as MAA's sample tokens */
#define DEVCLOUD_DEFAULT_COMPLIANCE "azure-compliant-uvm"
#define DEVCLOUD_HOSTNAMES_MAX 32
#define DEVCLOUD_TRUST_ROOTS_MAX 16
#define DEVCLOUD_SETTINGS_VERSION 1

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
	char *body; /* malloc'ed */
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

typedef int (*devcloud_handler_fn)(struct devcloud *dc, const struct devcloud_request *req,
                                   struct devcloud_response *resp);

enum devcloud_match {
	DEVCLOUD_MATCH_EXACT,
	DEVCLOUD_MATCH_EXACT_NOCASE, /* MAA's paths are case-insensitive */
	DEVCLOUD_MATCH_PREFIX,
};

struct devcloud_route {
	const char *method;
	const char *path;
	enum devcloud_match match;
	devcloud_handler_fn handler;
};

extern const struct devcloud_route devcloud_routes[];
extern const size_t devcloud_routes_count;

/* Route: a handler, or 404 for an unknown path, 405 (with Allow) for a wrong method. */
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
 * (200 {"token"}, 400/413 {"error"}). Returns 0 or -ENOMEM.
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

/* ---------------------------------------------------------------------------------------------
 * HTTPS server (server.c)
 * ------------------------------------------------------------------------------------------- */

struct devcloud_server;

/*
 * Parse --listen: a numeric loopback address (127.0.0.0/8 or ::1) or "localhost". Anything
 * else is refused with -EPERM (not loopback) or -EINVAL (not an address).
 */
int devcloud_listen_parse(const char *s, int *family, uint8_t addr[16], struct skr_error *err);

int devcloud_server_start(struct devcloud *dc, const char *listen, uint16_t port,
                          struct devcloud_server **out, struct skr_error *err);
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
