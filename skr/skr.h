/* SPDX-License-Identifier: MIT */
/*
 * libskr: SEV-SNP evidence, Microsoft Azure Attestation (MAA) and, later, secure key release.
 * This header is the library's whole contract; everything else in skr/ is private.
 *
 * Formats: ../shared/docs/protocols.md (section numbers below refer to it).
 * Conventions: functions return 0 or a negative errno, with the reason in struct skr_error;
 * xxx_new()/xxx_free() own objects, xxx_free(NULL) is a no-op.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "skr_error.h"

/* ============================================================================================
 * SEV-SNP attestation report (§1)
 * ========================================================================================== */

#define SNP_REPORT_SIZE 0x4A0        /* 1184 bytes */
#define SNP_REPORT_SIGNED_SIZE 0x2A0 /* bytes 0x000..0x29F are signed */
#define SNP_REPORT_VERSION_MIN 2
#define SNP_REPORT_VERSION_MAX 5
#define SNP_REPORT_DATA_SIZE 64
#define SNP_SIG_ALGO_ECDSA_P384_SHA384 1

enum snp_product {
	SNP_PRODUCT_UNKNOWN = 0,
	SNP_PRODUCT_MILAN,
	SNP_PRODUCT_GENOA,
	SNP_PRODUCT_TURIN,
};

/* KEY_INFO.SIGNING_KEY (bits 4:2) */
enum snp_signing_key {
	SNP_SIGNING_KEY_VCEK = 0,
	SNP_SIGNING_KEY_VLEK = 1,
	SNP_SIGNING_KEY_NONE = 7,
};

/* POLICY bits (§1.3) */
#define SNP_POLICY_SMT (UINT64_C(1) << 16)
#define SNP_POLICY_RESERVED_1 (UINT64_C(1) << 17) /* must be 1 */
#define SNP_POLICY_MIGRATE_MA (UINT64_C(1) << 18)
#define SNP_POLICY_DEBUG (UINT64_C(1) << 19)
#define SNP_POLICY_SINGLE_SOCKET (UINT64_C(1) << 20)
#define SNP_POLICY_CXL_ALLOW (UINT64_C(1) << 21)
#define SNP_POLICY_MEM_AES_256_XTS (UINT64_C(1) << 22)
#define SNP_POLICY_RAPL_DIS (UINT64_C(1) << 23)
#define SNP_POLICY_CIPHERTEXT_HIDING (UINT64_C(1) << 24)
#define SNP_POLICY_PAGE_SWAP_DISABLE (UINT64_C(1) << 25)

/* PLATFORM_INFO bits (§1.3) */
#define SNP_PLATFORM_SMT_EN (UINT64_C(1) << 0)
#define SNP_PLATFORM_TSME_EN (UINT64_C(1) << 1)
#define SNP_PLATFORM_ECC_EN (UINT64_C(1) << 2)
#define SNP_PLATFORM_RAPL_DIS (UINT64_C(1) << 3)
#define SNP_PLATFORM_CIPHERTEXT_HIDING_EN (UINT64_C(1) << 4)
#define SNP_PLATFORM_ALIAS_CHECK_COMPLETE (UINT64_C(1) << 5)
#define SNP_PLATFORM_TIO_EN (UINT64_C(1) << 7)

/* TCB_VERSION decoded (§1.2). fmc is only meaningful for Turin. */
struct snp_tcb {
	uint8_t fmc;
	uint8_t bootloader;
	uint8_t tee;
	uint8_t snp;
	uint8_t microcode;
};

/* Every field of the report, in host byte order. Reserved bytes are not kept. */
struct snp_report {
	uint32_t version;
	uint32_t guest_svn;
	uint64_t policy;
	uint8_t family_id[16];
	uint8_t image_id[16];
	uint32_t vmpl;
	uint32_t signature_algo;
	uint64_t current_tcb;
	uint64_t platform_info;
	uint32_t key_info;
	uint8_t report_data[64];
	uint8_t measurement[48];
	uint8_t host_data[32];
	uint8_t id_key_digest[48];
	uint8_t author_key_digest[48];
	uint8_t report_id[32];
	uint8_t report_id_ma[32];
	uint64_t reported_tcb;
	uint8_t cpuid_fam_id; /* v3+ */
	uint8_t cpuid_mod_id; /* v3+ */
	uint8_t cpuid_step;   /* v3+ */
	uint8_t chip_id[64];
	uint64_t committed_tcb;
	uint8_t current_build, current_minor, current_major;
	uint8_t committed_build, committed_minor, committed_major;
	uint64_t launch_tcb;
	uint64_t launch_mit_vector;  /* v5+ */
	uint64_t current_mit_vector; /* v5+ */
	uint8_t signature_r[72];     /* little-endian, as in the report */
	uint8_t signature_s[72];
};

/*
 * Parse a raw report. Refuses: a length other than SNP_REPORT_SIZE, VERSION outside 2..5,
 * non-zero MBZ bits of KEY_INFO, POLICY bit 17 clear. Not checked: reserved areas and POLICY
 * bits 63:26 (MBZ in §1.3, but newer firmware may define them, and a guest launched with a bit
 * the firmware does not know fails at launch, not here). Reserved bytes inside 0x000..0x29F are
 * covered by the signature; the reserved rest of the signature area (0x330..0x49F, after the
 * R and S fields) is not signed at all, so nothing may ever be read from it.
 */
int snp_report_parse(const uint8_t *buf, size_t len, struct snp_report *out, struct skr_error *err);

/* Serialize (reserved bytes zero). parse(serialize(r)) == r. */
void snp_report_serialize(const struct snp_report *r, uint8_t out[SNP_REPORT_SIZE]);

/*
 * The product line the report comes from: CPUID_FAM_ID/CPUID_MOD_ID in v3+, the CHIP_ID shape
 * in v2 (bytes 8..63 zero → Turin, else Milan; v2 cannot tell Genoa from Milan, so
 * @hint — e.g. the VCEK's productName — is used when not SNP_PRODUCT_UNKNOWN).
 */
enum snp_product snp_report_product(const struct snp_report *r, enum snp_product hint);

const char *snp_product_name(enum snp_product p); /* "Milan", "Genoa", "Turin", "unknown" */
int snp_product_from_string(const char *s, enum snp_product *out); /* case-insensitive */

/* TCB_VERSION <-> fields, per the product's layout (Turin differs from Milan/Genoa). */
void snp_tcb_decode(uint64_t raw, enum snp_product product, struct snp_tcb *out);
uint64_t snp_tcb_encode(const struct snp_tcb *tcb, enum snp_product product);

static inline enum snp_signing_key snp_report_signing_key(const struct snp_report *r)
{
	return (enum snp_signing_key)((r->key_info >> 2) & 7);
}

/* ============================================================================================
 * Certificate table of the extended report / configfs auxblob (§2.4)
 * ========================================================================================== */

#define SNP_CERT_TABLE_MAX 16

enum snp_cert_kind {
	SNP_CERT_OTHER = 0,
	SNP_CERT_ARK,
	SNP_CERT_ASK,
	SNP_CERT_VCEK,
	SNP_CERT_VLEK,
	SNP_CERT_CRL,
};

struct snp_cert_table_entry {
	uint8_t guid[16];
	enum snp_cert_kind kind;
	uint8_t *data; /* DER, malloc'ed */
	size_t len;
};

struct snp_cert_table {
	size_t count;
	struct snp_cert_table_entry entries[SNP_CERT_TABLE_MAX];
};

/*
 * Parse; refuses (-EPROTO: the host's table is malformed) entries pointing outside @len,
 * overlapping the table, or a missing terminator.
 */
int snp_cert_table_parse(const uint8_t *buf, size_t len, struct snp_cert_table *out,
                         struct skr_error *err);
/* Serialize to a malloc'ed buffer padded to a multiple of 4096 (the EXT_REPORT size rule). */
int snp_cert_table_serialize(const struct snp_cert_table *t, uint8_t **out, size_t *out_len,
                             struct skr_error *err);
/* Append a copy of @der with the GUID of @kind. */
int snp_cert_table_add(struct snp_cert_table *t, enum snp_cert_kind kind, const uint8_t *der,
                       size_t len, struct skr_error *err);
const struct snp_cert_table_entry *snp_cert_table_find(const struct snp_cert_table *t,
                                                       enum snp_cert_kind kind);
void snp_cert_table_clear(struct snp_cert_table *t);

/* ============================================================================================
 * Report verification (§3.2, §3.3)
 * ========================================================================================== */

/*
 * The AMD root keys (ARKs) a verifier accepts, plus known intermediates (ASK/ASVK).
 * Threads: fill it first; a filled store is only read, so any number of threads may then share
 * it in concurrent snp_report_verify() calls (no adding meanwhile).
 */
struct snp_trust_store;

int snp_trust_store_new(struct snp_trust_store **out, struct skr_error *err);
/*
 * Add every certificate of a PEM bundle: self-signed ones become trust anchors (ARK), others
 * are remembered as intermediates (ASK) usable when a chain lacks them. AMD's published
 * ask_ark_*.pem files can be passed as they are.
 */
int snp_trust_store_add_pem(struct snp_trust_store *ts, const char *pem, size_t len,
                            struct skr_error *err);
int snp_trust_store_add_file(struct snp_trust_store *ts, const char *path, struct skr_error *err);
size_t snp_trust_store_count(const struct snp_trust_store *ts); /* anchors */
void snp_trust_store_free(struct snp_trust_store *ts);

/* A report-signing certificate (VCEK or VLEK) with its ASK/ASVK and ARK, in any order. */
struct snp_cert_chain;

int snp_cert_chain_from_pem(const char *pem, size_t len, struct snp_cert_chain **out,
                            struct skr_error *err);
int snp_cert_chain_from_table(const struct snp_cert_table *t, struct snp_cert_chain **out,
                              struct skr_error *err);
/*
 * Add certificates (PEM) to a chain: fills in a missing ASK/ARK, e.g. from KDS cert_chain.
 * Repeats of present certificates are ignored; a different one for a filled slot is refused
 * (-EINVAL) and leaves @c unchanged.
 */
int snp_cert_chain_add_pem(struct snp_cert_chain *c, const char *pem, size_t len,
                           struct skr_error *err);
bool snp_cert_chain_has_leaf(const struct snp_cert_chain *c);
bool snp_cert_chain_is_complete(const struct snp_cert_chain *c); /* leaf, ASK and ARK present */
/* PEM of leaf ‖ ASK ‖ ARK (what MAA's VcekCertChain expects), malloc'ed. */
int snp_cert_chain_to_pem(const struct snp_cert_chain *c, char **out, struct skr_error *err);
void snp_cert_chain_free(struct snp_cert_chain *c);

/* AMD's X.509 extensions of a VCEK/VLEK (OIDs 1.3.6.1.4.1.3704.1.*). */
struct snp_vcek_info {
	bool is_vlek;
	unsigned struct_version;  /* 0 Milan/Genoa, 1 Turin */
	char product_name[32];    /* e.g. "Milan-B0" */
	enum snp_product product; /* from product_name */
	struct snp_tcb tcb;
	uint8_t spl[8];   /* spl_4..spl_7 at [4..7] as published; 0 when absent */
	uint64_t tcb_raw; /* TCB encoded in the product's TCB_VERSION layout */
	uint8_t hwid[64]; /* CHIP_ID (VCEK only) */
	size_t hwid_len;
	char csp_id[64]; /* VLEK only */
};

int snp_cert_chain_leaf_info(const struct snp_cert_chain *c, struct snp_vcek_info *out,
                             struct skr_error *err);

/*
 * Full verification of §3.3: SIGNATURE_ALGO, SIGNING_KEY (VCEK or VLEK, matching the chain's
 * leaf), leaf TCB == REPORTED_TCB, hwID == CHIP_ID (VCEK; Turin compares 8 bytes), leaf ← ASK ←
 * ARK with RSASSA-PSS SHA-384 salt 48, ARK equal to an anchor of @trust, ECDSA P-384 over bytes
 * 0x000..0x29F. Errors: -EBADMSG bad signature (report or certificate, including a certificate
 * not signed with AMD's PSS parameters), -EPERM untrusted chain, -ESTALE TCB mismatch, -EXDEV
 * hwID mismatch, -EKEYEXPIRED leaf or ASK outside its validity period, -EINVAL malformed input
 * (also a VLEK report with a VCEK chain or vice versa), -ENOTSUP unknown algorithm or signing
 * key. Checks run in the order listed, so a stale VCEK yields -ESTALE before any signature is
 * checked. A chain without ASK/ARK is completed from @trust's intermediates and anchors.
 */
int snp_report_verify(const uint8_t *report, size_t len, const struct snp_cert_chain *chain,
                      const struct snp_trust_store *trust, struct skr_error *err);

/* ============================================================================================
 * Virtual SNP platform (dev/test only: never a fallback for hardware)
 *
 * A directory holding a project-generated ARK, ASK, VCEK (+ its private key) and platform
 * parameters; it signs real-format reports that verify with snp_report_verify() against its ARK.
 * ========================================================================================== */

struct snp_virtual_params {
	enum snp_product product; /* default Milan */
	uint32_t report_version;  /* 2..5, default 3 */
	uint64_t policy;          /* default 0x30000: SMT + reserved bit, not debuggable */
	struct snp_tcb tcb;       /* REPORTED/CURRENT/COMMITTED/LAUNCH TCB */
	uint8_t chip_id[64];      /* random when all zero */
	uint8_t host_data[32];    /* e.g. SHA-256 of a CCE policy */
	uint8_t measurement[48];  /* random when all zero */
	bool vlek;                /* sign with a VLEK instead of a VCEK */
};

void snp_virtual_params_default(struct snp_virtual_params *p);

/* Create the platform in @dir (created 0700; files 0600). Refuses a non-empty platform. */
int snp_virtual_create(const char *dir, const struct snp_virtual_params *params,
                       struct skr_error *err);

struct snp_virtual;

int snp_virtual_open(const char *dir, struct snp_virtual **out, struct skr_error *err);
/* A signed report with REPORT_DATA = @report_data and VMPL = @vmpl; fresh REPORT_ID per call. */
int snp_virtual_get_report(struct snp_virtual *v, const uint8_t report_data[64], uint32_t vmpl,
                           uint8_t out[SNP_REPORT_SIZE], struct skr_error *err);
/* The platform's certificates as an extended-report table (VCEK/VLEK, ASK, ARK). */
int snp_virtual_cert_table(const struct snp_virtual *v, struct snp_cert_table *out,
                           struct skr_error *err);
const char *snp_virtual_ark_pem(const struct snp_virtual *v);
const char *snp_virtual_chain_pem(const struct snp_virtual *v); /* leaf ‖ ASK ‖ ARK */
const struct snp_virtual_params *snp_virtual_params(const struct snp_virtual *v);
void snp_virtual_free(struct snp_virtual *v);

/* ============================================================================================
 * Report sources (§2): one interface over the kernel ABIs and the virtual platform
 * ========================================================================================== */

enum snp_source_kind {
	SNP_SOURCE_AUTO = 0,  /* the first hardware interface present; never virtual */
	SNP_SOURCE_SEV_GUEST, /* /dev/sev-guest, kernel >= 5.19/6.x */
	SNP_SOURCE_SEV,       /* /dev/sev, 5.15 ACI UVM kernels */
	SNP_SOURCE_TSM,       /* configfs-tsm, kernel >= 6.7 */
	SNP_SOURCE_VIRTUAL,   /* project-built software platform (dev/test) */
};

/* "auto", "sev-guest", "sev", "configfs-tsm", "virtual" */
int snp_source_kind_from_string(const char *s, enum snp_source_kind *out);
const char *snp_source_kind_name(enum snp_source_kind k);

struct snp_source_config {
	enum snp_source_kind kind;
	const char *virtual_dir; /* required for SNP_SOURCE_VIRTUAL */
	const char *root;        /* prefix for /dev and /sys paths (tests); NULL = "/" */
	uint32_t vmpl;           /* VMPL to request, default 0 (ACI UVMs run at VMPL0) */
};

/* Not thread-safe: one snp_source_get_report() at a time per source (the attester locks). */
struct snp_source;

/*
 * Open a source. With SNP_SOURCE_AUTO and no device present, fails with -ENODEV and
 * "no SEV-SNP device: /dev/sev-guest, /dev/sev and configfs-tsm absent; set the attestation
 * source" so a machine outside a TEE fails at start, not at the first request.
 */
int snp_source_open(const struct snp_source_config *cfg, struct snp_source **out,
                    struct skr_error *err);
enum snp_source_kind snp_source_kind_of(const struct snp_source *s);
/*
 * Get a report. @certs (may be NULL) receives the certificate table the platform supplies with
 * the report (extended report, auxblob, virtual platform); it stays empty when there is none.
 * @certs is overwritten, not freed: snp_cert_table_clear() a previously filled table first.
 */
int snp_source_get_report(struct snp_source *s, const uint8_t report_data[64],
                          uint8_t report[SNP_REPORT_SIZE], struct snp_cert_table *certs,
                          struct skr_error *err);
void snp_source_free(struct snp_source *s);

/* ============================================================================================
 * Certificates for a report: ACI security context, THIM, AMD KDS, Azure cache (§3.1, §3.4)
 * ========================================================================================== */

enum snp_certcache_type {
	SNP_CERTCACHE_NONE = 0,   /* only what the security context / platform supplies */
	SNP_CERTCACHE_AMD,        /* AMD KDS */
	SNP_CERTCACHE_AZCACHE,    /* Azure global.acccache.azure.net */
	SNP_CERTCACHE_LOCAL_THIM, /* THIM behind the IMDS address */
};

/* The `certcache` object of the Go sidecar's JSON (§7.1) plus our additions. */
struct snp_certcache_config {
	enum snp_certcache_type type;
	const char *endpoint; /* host[/path] or a full http(s):// URL; NULL = the type's default */
	const char *tee_type; /* AzCache: default "SevSnpVM" */
	const char *api_version; /* AzCache: default "api-version=2020-10-15-preview" */
	const char *client_id;   /* AzCache: default "clientId=ConfidentialACI" */
	const char
	        *cache_dir; /* on-disk cache of fetched certificates by chip and TCB; NULL = none */
	const char *ca_bundle; /* PEM CA bundle for HTTPS; NULL = system store */
	long timeout_ms;       /* per fetch; default 10000 */
	/*
	 * The product line of this machine for KDS URLs and cache names when the report cannot
	 * tell (VERSION 2 has no CPUID: Milan and Genoa look alike). UNKNOWN = from the report;
	 * a VERSION 2 report then counts as Milan, and a KDS 404 is retried once as Genoa.
	 */
	enum snp_product product;
	/*
	 * ARKs a fetched chain must verify up to before it is written to cache_dir (and again
	 * when read back; an entry that fails is deleted). NULL = AMD's published Milan, Genoa
	 * and Turin ARKs, built in. Borrowed: must outlive the fetcher. A chain that does not
	 * verify is still returned (the report's verifier refuses it), just never cached.
	 */
	const struct snp_trust_store *trust;
};

/* "AMD", "AzCache", "LocalTHIM" (case-insensitive), "" → NONE */
int snp_certcache_type_from_string(const char *s, enum snp_certcache_type *out);

/* THIM JSON (host-amd-cert-base64 decoded, or a THIM endpoint's answer) */
struct snp_thim {
	char *vcek_pem;
	char *chain_pem; /* ASK ‖ ARK */
	uint64_t tcbm;   /* parsed from the 16-hex-digit string */
	char tcbm_str[17];
	long cache_control;
};

int snp_thim_parse(const char *json, size_t len, struct snp_thim *out, struct skr_error *err);
void snp_thim_clear(struct snp_thim *t);

/* The ACI security-context files / UVM_* environment (§3.4). Fields NULL when absent. */
struct snp_security_context {
	char *dir;                 /* directory the files were read from, if any */
	char *security_policy_b64; /* security-policy-base64 / UVM_SECURITY_POLICY */
	char *host_amd_cert_b64;   /* host-amd-cert-base64 / UVM_HOST_AMD_CERTIFICATE */
	char *reference_info_b64;  /* reference-info-base64 / UVM_REFERENCE_INFO */
};

/* @dir overrides discovery (NULL: UVM_SECURITY_CONTEXT_DIR, /security-context-*, kata path). */
int snp_security_context_load(const char *dir, struct snp_security_context *out,
                              struct skr_error *err);
void snp_security_context_clear(struct snp_security_context *sc);

/*
 * Fetcher of VCEK/VLEK chains with an on-disk cache (AMD KDS rate-limits). Not thread-safe: one
 * snp_cert_fetcher_get() at a time per fetcher (the attester serializes its calls).
 */
struct snp_cert_fetcher;

/*
 * Refuses (-EPERM) a cache_dir that another user owns or that group or others may write to:
 * whoever can write there chooses the certificates served from it.
 */
int snp_cert_fetcher_new(const struct snp_certcache_config *cfg, struct snp_cert_fetcher **out,
                         struct skr_error *err);
/*
 * Fetch the chain for @report's chip and REPORTED_TCB (product from the report or the
 * configuration). Errors: -ENOENT the service has no certificate for it (HTTP 404), -EACCES
 * refused (401/403), -EAGAIN rate-limited or unavailable after retries (408/429/5xx), -EPROTO
 * any other status or an answer that is not a certificate chain, transport errors of http.h.
 */
int snp_cert_fetcher_get(struct snp_cert_fetcher *f, const struct snp_report *report,
                         struct snp_cert_chain **out, struct skr_error *err);
void snp_cert_fetcher_free(struct snp_cert_fetcher *f);

/* KDS VCEK URL for a report (§3.1); malloc'ed. @base NULL = https://kdsintf.amd.com */
int snp_kds_vcek_url(const char *base, const struct snp_report *report, enum snp_product product,
                     char **out, struct skr_error *err);

/* Azure identity for bearer tokens (see skr_identity_new() below). */
struct skr_identity_config {
	const char *client_id;     /* user-assigned managed identity (identity.client_id) */
	const char *imds_endpoint; /* NULL = "http://169.254.169.254" (override: tests, proxies) */
	const char *ca_bundle;     /* for the Entra token endpoint (HTTPS); NULL = system store */
	long timeout_ms;           /* per request, default 7000 */
};

/* ============================================================================================
 * Attester: report + certificates + MAA token (§4), with the TCB-match-then-refresh logic
 * ========================================================================================== */

struct skr_attest_config {
	struct snp_source_config source;
	struct snp_certcache_config certcache;
	const char *security_context_dir;    /* NULL = discover */
	const char *ca_bundle;               /* PEM bundle for every HTTPS call; NULL = system */
	const char *user_agent;              /* MAA User-Agent; NULL = "ConfidentialSkrContainer" */
	long timeout_ms;                     /* per HTTP request, default 30000 */
	int max_attempts;                    /* HTTP attempts on retryable failures, default 3 */
	struct skr_identity_config identity; /* vault bearer tokens (skr_release_key) */
	int kek_pool_size; /* wrapping keys generated ahead in a background thread: 0 = default
	                    * (2), negative = none (generate on the request path) */
};

/* Evidence for one runtime-data binding: what /attest/combined returns (§7.2). */
struct skr_evidence {
	uint8_t report[SNP_REPORT_SIZE];
	char *cert_chain_pem;     /* leaf ‖ ASK ‖ ARK */
	char endorsed_tcb[17];    /* 16 hex digits: the chain's TCB */
	char *uvm_reference_info; /* b64 as found in the security context, or NULL */
};

void skr_evidence_clear(struct skr_evidence *e);

/*
 * One attester may be shared by several threads: report-source and certificate-cache calls are
 * serialized inside it, MAA calls run in parallel.
 */
struct skr_attester;

int skr_attester_new(const struct skr_attest_config *cfg, struct skr_attester **out,
                     struct skr_error *err);
void skr_attester_free(struct skr_attester *a);

/* REPORT_DATA = SHA-256(@runtime) ‖ 0^32 */
void skr_report_data_for(const uint8_t *runtime, size_t len, uint8_t report_data[64]);

/* A raw report bound to @runtime (what /attest/raw returns). */
int skr_attest_raw(struct skr_attester *a, const uint8_t *runtime, size_t len,
                   uint8_t report[SNP_REPORT_SIZE], struct skr_error *err);

/* Report + matching certificate chain (TCB match, then refresh, then a new report). */
int skr_attest_evidence(struct skr_attester *a, const uint8_t *runtime, size_t len,
                        struct skr_evidence *out, struct skr_error *err);

/*
 * POST the evidence to https://@maa_endpoint/attest/SevSnpVm?api-version=2020-10-01 with
 * @runtime as JSON runtime data; *token is the JWT (malloc'ed; a secret for the caller).
 */
int skr_attest_maa(struct skr_attester *a, const char *maa_endpoint, const uint8_t *runtime,
                   size_t len, char **token, struct skr_error *err);

/*
 * Verify an MAA token: RS256 signature with the key of the issuer's JWKS
 * (/.well-known/openid-configuration → jwks_uri, key by kid, x5c[0]), exp/nbf with 5 min skew,
 * and iss == https://@maa_endpoint. *claims_json is the payload (malloc'ed).
 */
int skr_token_verify(struct skr_attester *a, const char *maa_endpoint, const char *token,
                     char **claims_json, struct skr_error *err);

/* ============================================================================================
 * MAA attest request (§4.1): build (client) and parse (service, fuzzed)
 * ========================================================================================== */

struct maa_request {
	uint8_t *report; /* decoded SnpReport */
	size_t report_len;
	char *vcek_cert_chain; /* decoded VcekCertChain (PEM text) */
	size_t vcek_cert_chain_len;
	char *endorsements;    /* decoded Endorsements JSON, or NULL */
	uint8_t *runtime_data; /* decoded runtimeData.data */
	size_t runtime_data_len;
	char runtime_data_type[8]; /* "JSON" or "Binary" */
	uint8_t *init_data;
	size_t init_data_len;
	char init_data_type[8];
	char *nonce; /* as a string whether sent as a number or a string; NULL if absent */
};

/*
 * Build the body exactly as the anchor does: report = b64url(JSON{SnpReport, VcekCertChain,
 * Endorsements?}), runtimeData {data: b64url, dataType: "JSON"}, initTimeData empty, nonce a
 * JSON number.
 */
int maa_request_build(const uint8_t *report, size_t report_len, const char *cert_chain_pem,
                      const char *uvm_reference_info_b64, const uint8_t *runtime,
                      size_t runtime_len, uint64_t nonce, char **out, struct skr_error *err);

/* Parse a body (padded or unpadded b64url; nonce number or string; Endorsements optional). */
int maa_request_parse(const char *body, size_t len, struct maa_request *out, struct skr_error *err);
void maa_request_clear(struct maa_request *r);

/* ============================================================================================
 * Token verification without an attester (the key vault side, tools)
 * ========================================================================================== */

/* Verifies RS256 tokens against issuers' published keys; caches each issuer's JWKS. Thread-safe. */
struct skr_token_verifier;

int skr_token_verifier_new(const char *ca_bundle, struct skr_token_verifier **out,
                           struct skr_error *err);
/*
 * Verify @token issued by @issuer_url ("https://host[:port]"): iss == @issuer_url (trailing '/'
 * tolerated), signature with the key of the issuer's JWKS (openid-configuration → jwks_uri on
 * the same origin → kid → x5c[0]), exp/nbf with 5 min skew. *claims_json (malloc'ed) is the
 * payload. Expired → -ESTALE, wrong issuer → -EACCES, bad signature → -EBADMSG.
 */
int skr_token_verifier_verify(struct skr_token_verifier *v, const char *issuer_url,
                              const char *token, char **claims_json, struct skr_error *err);
void skr_token_verifier_free(struct skr_token_verifier *v);

/* The "iss" of a token without verifying anything (to pick the policy authority); malloc'ed. */
int skr_token_peek_issuer(const char *token, char **issuer, struct skr_error *err);

/* ============================================================================================
 * Release policies (§5.4): parse, evaluate with an explanation, build from importkey claims
 * ========================================================================================== */

struct skr_policy;

/*
 * Versions "1.0.0" and "0.2" (and absent); anyOf/allOf groups nested up to 12 levels, at most
 * 4096 authorities and conditions; every operator of §5.4. Errors name the JSON path
 * ("release policy: anyOf[0].allOf[2]: unknown operator 'equal' ..."). Semantics: skr/policy.c.
 */
int skr_policy_parse(const char *json, size_t len, struct skr_policy **out, struct skr_error *err);
void skr_policy_free(struct skr_policy *p);

/*
 * Evaluate @p against a token's claims (@claims_json, a JSON object) from issuer @issuer.
 * 0 = allowed. -EACCES = denied: err->msg names the first failed condition of the authority
 * that came closest ("claim x-ms-sevsnpvm-hostdata is 'ab…' but the policy requires equals
 * 'cd…'"), and *explanation (may be NULL; malloc'ed, one line per condition) lists, claim by
 * claim, every condition of that authority with the token's value, the required value and
 * met/NOT met. Comparison is Key Vault's loose one: booleans and numbers match their string
 * forms ("false", "0"). -EINVAL for claims that are not a JSON object. *explanation is NULL
 * unless -EACCES. A parsed policy is read-only here: threads may evaluate one concurrently.
 */
int skr_policy_evaluate(const struct skr_policy *p, const char *issuer, const char *claims_json,
                        size_t claims_len, char **explanation, struct skr_error *err);

/*
 * The release policy importkey builds (§7.4, §5.4): version 1.0.0, one anyOf entry per inner
 * array of @claims_json (an array of arrays of {"claim": name, <operator>: value}), each with
 * authority "https://" + @maa_endpoint (host[:port], or an https:// URL kept as given without
 * its trailing '/') and allOf its conditions. Any operator is accepted, not only equals; values
 * are copied as written. Validated with skr_policy_parse()'s rules, errors naming claims[i][j].
 * *policy_json malloc'ed.
 */
int skr_policy_build(const char *maa_endpoint, const char *claims_json, size_t claims_len,
                     char **policy_json, struct skr_error *err);

/* ============================================================================================
 * Key wrapping for release (§5.3): CKM_RSA_AES_KEY_WRAP family
 * ========================================================================================== */

enum skr_wrap_alg {
	SKR_WRAP_RSA_AES = 0, /* "CKM_RSA_AES_KEY_WRAP": RSA-OAEP SHA-1 + AES-KWP (default) */
	SKR_WRAP_RSA_AES_256, /* "RSA_AES_KEY_WRAP_256": RSA-OAEP SHA-256 */
	SKR_WRAP_RSA_AES_384, /* "RSA_AES_KEY_WRAP_384": RSA-OAEP SHA-384 */
};

/* Exact names only (case matters); NULL/"" → default; anything else -EINVAL. */
int skr_wrap_alg_from_string(const char *s, enum skr_wrap_alg *out);
const char *skr_wrap_alg_name(enum skr_wrap_alg alg); /* NULL for a value outside the enum */

/*
 * Wrap @key for the holder of the RSA key given as a public JWK (kty RSA, n, e; any modulus
 * size ≥ 2048): RSA-OAEP(@alg's hash, MGF1 same hash, empty label) of a fresh AES-256 key ‖
 * RFC 5649 AES key wrap with padding of @key. *out malloc'ed.
 */
int skr_key_wrap(const char *kek_jwk_json, size_t kek_jwk_len, enum skr_wrap_alg alg,
                 const uint8_t *key, size_t key_len, uint8_t **out, size_t *out_len,
                 struct skr_error *err);

/* ============================================================================================
 * Released keys (§5.2, §7.2, §7.6)
 * ========================================================================================== */

enum skr_key_type {
	SKR_KEY_OCT = 1, /* symmetric: material = raw bytes */
	SKR_KEY_RSA,     /* material = PKCS#8 DER private key */
	SKR_KEY_EC,      /* material = PKCS#8 DER private key */
};

#define SKR_KEY_OPS_MAX 16

struct secret;

struct skr_key {
	enum skr_key_type type;
	char *kid; /* the vault's key id (https://vault/keys/name/version), or NULL */
	char *key_ops[SKR_KEY_OPS_MAX];
	size_t n_key_ops;
	struct secret *material; /* locked memory, erased on free */
};

void skr_key_free(struct skr_key *k);

/*
 * The key as the JWK text the Go sidecar's /key/release returns inside {"key": "..."}: oct →
 * {"k","key_ops","kty":"oct"}, RSA → private JWK {"d","dp","dq","e","key_ops","kty":"RSA","n",
 * "p","q","qi"}, EC → {"crv","d","key_ops","kty":"EC","x","y"} (key_ops omitted when empty).
 * *json lives in locked memory.
 */
int skr_key_to_jwk(const struct skr_key *k, struct secret **json, struct skr_error *err);

#define SKR_DERIVED_KEY_SIZE 32
#define SKR_DEFAULT_KDF_LABEL "Symmetric Encryption Key"

/*
 * The 32-byte LUKS key of a released key (§7.3, §7.6): oct keys must be exactly 32 bytes and
 * are used as they are; RSA keys → HKDF-SHA256(IKM = D big-endian without leading zeros,
 * salt = hex @salt_hex (NULL/"" = RFC 5869 default), info = @label (NULL/"" = default label,
 * as the Go sidecar treats an absent key_derivation.label)). Other types are refused.
 */
int skr_key_derive(const struct skr_key *k, const char *salt_hex, const char *label,
                   struct secret **out, struct skr_error *err);

/* The same HKDF for an RSA private key in PKCS#8 DER or PEM (importkey -out). */
int skr_rsa_derive_key(const uint8_t *pkcs8, size_t len, const char *salt_hex, const char *label,
                       struct secret **out, struct skr_error *err);

/*
 * A fingerprint that identifies a key without revealing it: "sha256:" + 32 hex digits of
 * SHA-256("confidential-sidecar key fingerprint v1" ‖ 0x00 ‖ key). importkey prints it for the
 * key it imports and for the derived LUKS key; the sidecar logs it for the key it released.
 */
#define SKR_FINGERPRINT_STR_SIZE (7 + 32 + 1)
void skr_key_fingerprint(const uint8_t *key, size_t len, char out[SKR_FINGERPRINT_STR_SIZE]);

/* ============================================================================================
 * Azure identity tokens (§6.1 IMDS managed identity, §6.2 workload identity)
 * ========================================================================================== */

/* Token source with a cache (a token is reused until 5 minutes before it expires). */
struct skr_identity;

int skr_identity_new(const struct skr_identity_config *cfg, struct skr_identity **out,
                     struct skr_error *err);
/*
 * A bearer token for @resource ("https://vault.azure.net", "https://managedhsm.azure.net", a
 * storage account URL): workload identity when AZURE_CLIENT_ID, AZURE_TENANT_ID and
 * AZURE_FEDERATED_TOKEN_FILE are set (AZURE_AUTHORITY_HOST honoured, default
 * https://login.microsoftonline.com/; the assertion file is re-read per request), else IMDS
 * managed identity. *token in locked memory: the token text, NUL-terminated (len excludes the
 * NUL). Errors: -EACCES when the token service refuses (its OAuth error carried in the
 * message), -EIO for 429/5xx after the retries, -EPROTO for a malformed answer.
 */
int skr_identity_get_token(struct skr_identity *id, const char *resource, struct secret **token,
                           struct skr_error *err);
void skr_identity_free(struct skr_identity *id);

/* The token audience for a vault endpoint: managedhsm → https://managedhsm.azure.net, else
 * https://vault.azure.net (§5). Static string. */
const char *skr_akv_resource_for(const char *akv_endpoint);

/* ============================================================================================
 * Key Vault / Managed HSM client (§5.1, §5.2)
 * ========================================================================================== */

struct skr_akv_import {
	const char *endpoint; /* vault host[:port] or https:// URL */
	const char *
	        api_version; /* "7.4" or "api-version=7.4" (the Go config's spelling); NULL = 7.4 */
	const char *name;    /* key name */
	const char *jwk_json; /* the key to import as a JWK (secret: oct k / RSA d …) */
	size_t jwk_len;
	bool hsm;                /* "hsm": true (oct-HSM / RSA-HSM / EC-HSM) */
	const char *policy_json; /* release policy (becomes release_policy.data, b64url) */
	bool immutable;
	bool exportable; /* must be true for secure key release */
	const char *bearer_token;
	const char *ca_bundle;
	long timeout_ms;
};

/* PUT /keys/{name}; *key_id (malloc'ed) is the new version's kid URL. */
int skr_akv_import_key(const struct skr_akv_import *imp, char **key_id, struct skr_error *err);

/* GET /keys/{name}[/{version}] and return its decoded release policy JSON (malloc'ed). */
int skr_akv_get_release_policy(const char *endpoint, const char *api_version, const char *kid,
                               const char *bearer_token, const char *ca_bundle, char **policy_json,
                               struct skr_error *err);

/* ============================================================================================
 * Secure key release (§7.5): attest with a fresh wrapping key, release, verify, unwrap
 * ========================================================================================== */

struct skr_release_request {
	const char *maa_endpoint; /* host[:port] or https URL */
	const char *akv_endpoint; /* host[:port] or https URL */
	const char *kid;          /* key name, or name/version */
	const char *access_token; /* bearer token for the vault; NULL = from the identity */
	const char *enc;          /* NULL = CKM_RSA_AES_KEY_WRAP */
	const char *api_version;  /* NULL = 7.4 */
};

/*
 * The release sequence: a fresh RSA-2048 wrapping key (taken from the attester's background
 * pool, never reused), runtime data {"keys":[its public JWK with the RFC 7638 thumbprint as
 * kid]}, MAA token, bearer token, POST /keys/{kid}/release, JWS signature and x5c chain checked
 * against the attester's CA bundle (or system store) for the vault's host name, key_hsm
 * unwrapped, the wrapping key erased. On a 403 the key's release policy is fetched and
 * evaluated against the token's claims, and err->msg says which condition failed.
 * Errors name the step: "attest", "identity", "release", "release response", "unwrap".
 * Codes: vault HTTP 400 -EINVAL, 401/403 -EACCES, 404 -ENOENT, 429 -EAGAIN and 5xx -EIO (both
 * after the attester's bounded retries), timeout -ETIMEDOUT; JWS signature -EBADMSG, chain not
 * trusted or not issued for the vault's host -EPERM; RFC 5649 integrity failure -EBADMSG;
 * unsupported key type -ENOTSUP; malformed answer or key wrapped for another key -EPROTO.
 */
int skr_release_key(struct skr_attester *a, const struct skr_release_request *req,
                    struct skr_key **out, struct skr_error *err);

/*
 * What an audit trail may record about an attestation or a release without seeing a secret:
 * the MAA token by its "jti" claim, the SNP report by its SHA-256 (lower-case hex), a released
 * key by skr_key_fingerprint() and the vault's id of the released version. Empty strings for
 * what is not known; filled as far as the call got, on failure too (a jti or kid longer than
 * its field is cut).
 */
struct skr_attest_info {
	char jti[128];
	char report_sha256[65];
};

struct skr_release_info {
	char jti[128];
	char report_sha256[65];
	char key_fingerprint[SKR_FINGERPRINT_STR_SIZE];
	char kid[512];
};

/*
 * skr_attest_maa() that also fills @info (may be NULL). Both refuse runtime data that is not a
 * JSON text (-EINVAL naming runtime_data, before any report is taken: it is sent with dataType
 * JSON) and a token whose "nonce" claim, when it has one, is not the request's (-EPROTO).
 */
int skr_attest_maa_ex(struct skr_attester *a, const char *maa_endpoint, const uint8_t *runtime,
                      size_t len, char **token, struct skr_attest_info *info,
                      struct skr_error *err);

/* skr_release_key() that also fills @info (may be NULL). */
int skr_release_key_ex(struct skr_attester *a, const struct skr_release_request *req,
                       struct skr_key **out, struct skr_release_info *info, struct skr_error *err);
