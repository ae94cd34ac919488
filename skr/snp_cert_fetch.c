/* SPDX-License-Identifier: MIT */
/*
 * Certificates for a report from the network (protocols.md §3.1, §3.4): AMD KDS, the THIM
 * endpoint behind the IMDS address, or the Azure certificate cache, with an on-disk cache.
 *
 * The cache matters because AMD KDS rate-limits per client: a VCEK changes only with the chip and
 * the TCB, so one fetch per (product, chip, TCB) is enough for the life of a machine. Entries are
 * keyed by the TCB of the certificate actually received (which for THIM may differ from the
 * report's REPORTED_TCB), hold the normalized PEM chain, and are replaced atomically; an entry
 * that no longer parses is ignored and refetched.
 *
 * Trust: THIM is plain HTTP and a KDS mirror may be too, so an answer may be forged. A forged
 * answer must not outlive the request it answered: only a chain that verifies up to a pinned ARK
 * (AMD's three published ones unless the configuration names another trust store) is written to
 * the cache, and a cached chain is verified again when served, an entry that fails is deleted.
 * A chain that does not verify is still returned (whoever checks the report, MAA or
 * snp_report_verify, refuses it with the precise reason) but never remembered. The cache
 * directory must belong to us and be writable by nobody else, since whoever can write to it
 * chooses the certificates we would serve.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "bytes.h"
#include "b64.h"
#include "cleanup.h"
#include "fileio.h"
#include "http.h"
#include "log.h"
#include "ossl.h"
#include "snp_cert_internal.h"

#define KDS_DEFAULT_BASE "https://kdsintf.amd.com"
/* The Go sidecar's default KDS endpoint carries the path; we add it ourselves. */
#define KDS_VCEK_PATH "/vcek/v1"
#define THIM_DEFAULT_HOST "169.254.169.254"
#define THIM_DEFAULT_PATH "/metadata/THIM/amd/certification"
#define AZCACHE_DEFAULT_HOST "global.acccache.azure.net"
#define AZCACHE_DEFAULT_TEE "SevSnpVM"
#define AZCACHE_DEFAULT_API "api-version=2020-10-15-preview"
#define AZCACHE_DEFAULT_CLIENT "clientId=ConfidentialACI"
#define FETCH_DEFAULT_TIMEOUT_MS 10000L
/* The anchor's policy: two retries after the first attempt (§3.1). */
#define FETCH_ATTEMPTS 3
/* A chain is ~7 KiB of PEM and a THIM answer ~10 KiB; anything near this is not one. */
#define FETCH_MAX_BODY (1u << 20)

struct snp_cert_fetcher {
	enum snp_certcache_type type;
	char *base; /* normalized URL without trailing '/' */
	char *tee_type, *api_version, *client_id;
	char *cache_dir;
	enum snp_product product; /* configured product line; UNKNOWN = from the report */
	const struct snp_trust_store *trust; /* cfg->trust or own_trust */
	struct snp_trust_store *own_trust;   /* AMD's ARKs, when the configuration names none */
	struct http_client *http;
};

DEFINE_CLEANUP_FUNC(struct snp_cert_fetcher *, snp_cert_fetcher_free)

static const char *type_label(enum snp_certcache_type t)
{
	switch (t) {
	case SNP_CERTCACHE_AMD:
		return "AMD KDS";
	case SNP_CERTCACHE_AZCACHE:
		return "Azure certificate cache";
	case SNP_CERTCACHE_LOCAL_THIM:
		return "THIM";
	default:
		return "none";
	}
}

/* Short names for cache file names. */
static const char *type_key(enum snp_certcache_type t)
{
	switch (t) {
	case SNP_CERTCACHE_AMD:
		return "amd";
	case SNP_CERTCACHE_AZCACHE:
		return "azcache";
	case SNP_CERTCACHE_LOCAL_THIM:
		return "thim";
	default:
		return "none";
	}
}

int snp_certcache_type_from_string(const char *s, enum snp_certcache_type *out)
{
	static const struct {
		const char *name;
		enum snp_certcache_type type;
	} names[] = {
	        {"AMD", SNP_CERTCACHE_AMD},
	        {"AzCache", SNP_CERTCACHE_AZCACHE},
	        {"LocalTHIM", SNP_CERTCACHE_LOCAL_THIM},
	};

	if (!s || !*s) {
		*out = SNP_CERTCACHE_NONE;
		return 0;
	}
	for (size_t i = 0; i < ELEMENTSOF(names); i++) {
		if (strcasecmp(s, names[i].name) == 0) {
			*out = names[i].type;
			return 0;
		}
	}
	return -EINVAL;
}

static size_t trimmed_len(const char *s)
{
	size_t n = strlen(s);

	while (n > 0 && s[n - 1] == '/')
		n--;
	return n;
}

/* What KDS (and any cache keyed by chip) can be asked about: a VCEK-signed, unmasked report. */
static int check_fetchable(const struct snp_report *report, struct skr_error *err)
{
	enum snp_signing_key key = snp_report_signing_key(report);

	if (key == SNP_SIGNING_KEY_VLEK)
		return skr_error_set(
		        err, -ENOTSUP,
		        "report is signed with a VLEK: VLEK certificates come from the "
		        "host (extended report); KDS serves only VCEKs");
	if (key != SNP_SIGNING_KEY_VCEK)
		return skr_error_set(
		        err, -ENOTSUP,
		        "report is not signed by a VCEK (KEY_INFO.SIGNING_KEY = %u): no "
		        "certificate can be fetched for it",
		        (unsigned)key);
	if (all_zero(report->chip_id, sizeof(report->chip_id)))
		return skr_error_set(
		        err, -EINVAL,
		        "report CHIP_ID is all zero (the MASK_CHIP_ID policy is set): "
		        "its VCEK cannot be looked up by chip; supply the certificates "
		        "from the host instead");
	return 0;
}

static int report_product(const struct snp_report *report, enum snp_product hint,
                          enum snp_product *out, struct skr_error *err)
{
	*out = snp_report_product(report, hint);
	if (*out == SNP_PRODUCT_UNKNOWN)
		return skr_error_set(
		        err, -EINVAL,
		        "cannot tell the report's product line (VERSION %u, CPUID family "
		        "0x%02x model 0x%02x): KDS needs Milan, Genoa or Turin",
		        report->version, report->cpuid_fam_id, report->cpuid_mod_id);
	return 0;
}

int snp_kds_vcek_url(const char *base, const struct snp_report *report, enum snp_product product,
                     char **out, struct skr_error *err)
{
	char hwid[2 * sizeof(report->chip_id) + 1];
	struct snp_tcb tcb;
	enum snp_product p;
	int r, n;

	*out = NULL;
	r = check_fetchable(report, err);
	if (r < 0)
		return r;
	r = report_product(report, product, &p, err);
	if (r < 0)
		return r;
	if (!base || !*base)
		base = KDS_DEFAULT_BASE;
	snp_tcb_decode(report->reported_tcb, p, &tcb);
	if (p == SNP_PRODUCT_TURIN) {
		/* Turin's hwID is the first 8 bytes of CHIP_ID; the TCB has an FMC field. */
		hex_encode(report->chip_id, 8, hwid);
		n = asprintf(out,
		             "%.*s" KDS_VCEK_PATH "/%s/%s?fmcSPL=%u&blSPL=%u&teeSPL=%u&snpSPL=%u"
		             "&ucodeSPL=%u",
		             (int)trimmed_len(base), base, snp_product_name(p), hwid, tcb.fmc,
		             tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode);
	} else {
		hex_encode(report->chip_id, sizeof(report->chip_id), hwid);
		n = asprintf(out,
		             "%.*s" KDS_VCEK_PATH "/%s/%s?blSPL=%u&teeSPL=%u&snpSPL=%u&ucodeSPL=%u",
		             (int)trimmed_len(base), base, snp_product_name(p), hwid,
		             tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode);
	}
	if (n < 0) {
		*out = NULL;
		return skr_error_set(err, -ENOMEM, "KDS URL: out of memory");
	}
	return 0;
}

/*
 * host[/path] gets @scheme; a full http(s):// URL is used as given. A query or fragment would
 * break the URLs built from the endpoint, so neither is accepted.
 */
static int endpoint_url(const char *endpoint, const char *scheme, char **out, struct skr_error *err)
{
	const char *sep = strstr(endpoint, "://");
	size_t n;

	*out = NULL;
	for (const char *p = endpoint; *p; p++)
		if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p) || *p == '?' ||
		    *p == '#')
			return skr_error_set(err, -EINVAL,
			                     "certcache endpoint '%s': expected host[/path] or an "
			                     "http(s):// URL without query, fragment or spaces",
			                     endpoint);
	if (sep && strncasecmp(endpoint, "http://", 7) != 0 &&
	    strncasecmp(endpoint, "https://", 8) != 0)
		return skr_error_set(
		        err, -EINVAL,
		        "certcache endpoint '%s': only http:// and https:// are supported",
		        endpoint);
	n = trimmed_len(endpoint);
	if (n == 0 || (sep && (size_t)(sep - endpoint) + 3 >= n))
		return skr_error_set(err, -EINVAL, "certcache endpoint '%s' names no host",
		                     endpoint);
	if (asprintf(out, "%s%.*s", sep ? "" : scheme, (int)n, endpoint) < 0) {
		*out = NULL;
		return skr_error_set(err, -ENOMEM, "certcache endpoint: out of memory");
	}
	return 0;
}

static bool url_has_path(const char *url)
{
	const char *host = strstr(url, "://");

	return host && strchr(host + 3, '/');
}

static int fetcher_base(const struct snp_certcache_config *cfg, char **out, struct skr_error *err)
{
	const char *ep = cfg->endpoint && *cfg->endpoint ? cfg->endpoint : NULL;
	size_t n;
	int r;

	switch (cfg->type) {
	case SNP_CERTCACHE_AMD:
		r = endpoint_url(ep ? ep : KDS_DEFAULT_BASE, "https://", out, err);
		if (r < 0)
			return r;
		/* "kdsintf.amd.com/vcek/v1" (the Go sidecar's form) names the same service. */
		n = strlen(*out);
		if (n > strlen(KDS_VCEK_PATH) &&
		    strcmp(*out + n - strlen(KDS_VCEK_PATH), KDS_VCEK_PATH) == 0)
			(*out)[n - strlen(KDS_VCEK_PATH)] = '\0';
		return 0;
	case SNP_CERTCACHE_AZCACHE:
		return endpoint_url(ep ? ep : AZCACHE_DEFAULT_HOST, "https://", out, err);
	case SNP_CERTCACHE_LOCAL_THIM:
		/* IMDS is plain HTTP on a link-local address. */
		r = endpoint_url(ep ? ep : THIM_DEFAULT_HOST, "http://", out, err);
		if (r < 0 || url_has_path(*out))
			return r;
		{
			char *full;

			if (asprintf(&full, "%s" THIM_DEFAULT_PATH, *out) < 0)
				return skr_error_set(err, -ENOMEM,
				                     "certcache endpoint: out of memory");
			free(*out);
			*out = full;
		}
		return 0;
	case SNP_CERTCACHE_NONE:
		*out = NULL;
		return 0;
	}
	return skr_error_set(err, -EINVAL, "certcache: unknown endpoint_type %d", (int)cfg->type);
}

/* Parts pasted into the AzCache URL: no separators that would change its shape. */
static int check_url_part(const char *what, const char *v, const char *forbidden,
                          struct skr_error *err)
{
	for (const char *p = v; *p; p++)
		if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p) ||
		    strchr(forbidden, *p))
			return skr_error_set(
			        err, -EINVAL,
			        "certcache %s '%s' contains '%c', which is not allowed there", what,
			        v, *p);
	return 0;
}

static int dup_or_default(const char *v, const char *def, char **out, struct skr_error *err)
{
	*out = strdup(v && *v ? v : def);
	return *out ? 0 : skr_error_set(err, -ENOMEM, "certcache: out of memory");
}

/*
 * Whoever can write to the cache directory chooses the certificates served from it (mkdir_p
 * keeps the mode of a directory that already exists): it must be ours and closed to others.
 */
static int cache_dir_check(const char *dir, struct skr_error *err)
{
	struct stat st;

	if (stat(dir, &st) < 0)
		return skr_error_set(err, -errno, "certcache: cache_dir '%s': %s", dir,
		                     skr_strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return skr_error_set(err, -ENOTDIR, "certcache: cache_dir '%s' is not a directory",
		                     dir);
	if (st.st_uid != geteuid())
		return skr_error_set(err, -EPERM,
		                     "certcache: cache_dir '%s' belongs to uid %u, not to this "
		                     "process (uid %u): another user could plant certificates "
		                     "there; use a directory of our own",
		                     dir, (unsigned)st.st_uid, (unsigned)geteuid());
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return skr_error_set(err, -EPERM,
		                     "certcache: cache_dir '%s' is writable by group or others "
		                     "(mode %03o): another user could plant certificates there; "
		                     "chmod go-w it",
		                     dir, (unsigned)(st.st_mode & 0777));
	return 0;
}

int snp_cert_fetcher_new(const struct snp_certcache_config *cfg, struct snp_cert_fetcher **out,
                         struct skr_error *err)
{
	_cleanup_(snp_cert_fetcher_freep) struct snp_cert_fetcher *f = NULL;
	struct http_client_config hc = {0};
	int r;

	*out = NULL;
	if (!cfg)
		return skr_error_set(err, -EINVAL, "certcache: no configuration given");
	f = calloc(1, sizeof(*f));
	if (!f)
		return skr_error_set(err, -ENOMEM, "certcache: out of memory");
	f->type = cfg->type;
	r = fetcher_base(cfg, &f->base, err);
	if (r < 0)
		return r;
	if (dup_or_default(cfg->tee_type, AZCACHE_DEFAULT_TEE, &f->tee_type, err) < 0 ||
	    dup_or_default(cfg->api_version, AZCACHE_DEFAULT_API, &f->api_version, err) < 0 ||
	    dup_or_default(cfg->client_id, AZCACHE_DEFAULT_CLIENT, &f->client_id, err) < 0)
		return -ENOMEM;
	r = check_url_part("tee_type", f->tee_type, "/?#&", err);
	if (r >= 0)
		r = check_url_part("api_version", f->api_version, "/?#&", err);
	if (r >= 0)
		r = check_url_part("client_id", f->client_id, "/?#&", err);
	if (r < 0)
		return r;
	if ((unsigned)cfg->product > SNP_PRODUCT_TURIN)
		return skr_error_set(err, -EINVAL,
		                     "certcache: product %d is not Milan, Genoa or Turin",
		                     (int)cfg->product);
	f->product = cfg->product;
	if (cfg->trust) {
		f->trust = cfg->trust;
	} else {
		r = snp_trust_store_new(&f->own_trust, err);
		if (r < 0)
			return r;
		r = snp_trust_store_add_pem(f->own_trust, snp_amd_roots_pem,
		                            strlen(snp_amd_roots_pem), err);
		if (r < 0) {
			skr_error_prefix(err, "certcache: AMD's built-in root keys: ");
			return r;
		}
		f->trust = f->own_trust;
	}
	if (cfg->cache_dir && *cfg->cache_dir) {
		f->cache_dir = strdup(cfg->cache_dir);
		if (!f->cache_dir)
			return skr_error_set(err, -ENOMEM, "certcache: out of memory");
		r = mkdir_p(f->cache_dir, 0700);
		if (r < 0)
			return skr_error_set(err, r, "certcache: cannot create cache_dir '%s': %s",
			                     f->cache_dir, skr_strerror(r));
		r = cache_dir_check(f->cache_dir, err);
		if (r < 0)
			return r;
	}
	if (f->type != SNP_CERTCACHE_NONE) {
		hc.ca_bundle = cfg->ca_bundle;
		hc.timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : FETCH_DEFAULT_TIMEOUT_MS;
		hc.max_attempts = FETCH_ATTEMPTS;
		r = http_client_new(&hc, &f->http, err);
		if (r < 0)
			return r;
	}
	log_debug("certcache: %s at %s%s%s", type_label(f->type), f->base ? f->base : "-",
	          f->cache_dir ? ", cache " : "", f->cache_dir ? f->cache_dir : "");
	*out = TAKE_PTR(f);
	return 0;
}

void snp_cert_fetcher_free(struct snp_cert_fetcher *f)
{
	if (!f)
		return;
	http_client_free(f->http);
	free(f->base);
	free(f->tee_type);
	free(f->api_version);
	free(f->client_id);
	free(f->cache_dir);
	snp_trust_store_free(f->own_trust);
	free(f);
}

/* ---- fetching ------------------------------------------------------------------------- */

/*
 * What a non-200 answer means to the caller: -ENOENT nothing for this chip and TCB, -EACCES
 * refused, -EAGAIN rate-limited or unavailable (still so after the HTTP client's retries: worth
 * trying later), -EPROTO an answer a certificate service should never give.
 */
static int status_errno(long status)
{
	if (status == 404)
		return -ENOENT;
	if (status == 401 || status == 403)
		return -EACCES;
	if (status == 408 || status == 429 || (status >= 500 && status <= 599))
		return -EAGAIN;
	return -EPROTO;
}

/* GET @url; anything but 200 is an error naming the service and the status. */
static int fetch(struct snp_cert_fetcher *f, const char *url, const char *const *headers,
                 struct http_response *resp, struct skr_error *err)
{
	_cleanup_free_ char *safe = http_url_redact(url);
	int r;

	r = http_request(f->http, "GET", url, headers, NULL, 0, FETCH_MAX_BODY, resp, err);
	if (r < 0) {
		skr_error_prefix(err, "%s: ", type_label(f->type));
		return r;
	}
	if (resp->status == 200)
		return 0;
	r = status_errno(resp->status);
	skr_error_set(err, r, "%s: GET %s answered HTTP %ld%s", type_label(f->type),
	              safe ? safe : "(url)", resp->status,
	              resp->status == 404   ? " (no certificate for this chip and TCB)"
	              : resp->status == 429 ? " (rate limited; set a cache_dir to fetch less)"
	              : resp->status == 401 || resp->status == 403
	                      ? " (access refused: check the endpoint and its credentials)"
	              : r == -EAGAIN ? " (service unavailable; try again later)"
	                             : "");
	http_response_clear(resp);
	return r;
}

/* KDS answers the VCEK in DER; accept PEM too (mirrors and caches differ). */
static int vcek_to_pem(const struct http_response *resp, char **out, struct skr_error *err)
{
	const unsigned char *p = (const unsigned char *)resp->body;
	_cleanup_(X509_freep) X509 *x = NULL;
	_cleanup_(BIO_free_allp) BIO *bio = NULL;
	char *data;
	long n;

	if (strstr(resp->body, SNP_PEM_CERT_MARKER)) {
		*out = strdup(resp->body);
		return *out ? 0 : skr_error_set(err, -ENOMEM, "AMD KDS: out of memory");
	}
	x = d2i_X509(NULL, &p, (long)resp->body_len);
	if (!x || p != (const unsigned char *)resp->body + resp->body_len) {
		ERR_clear_error();
		return skr_error_set(
		        err, -EPROTO,
		        "AMD KDS: the VCEK answer (%zu bytes) is not one DER certificate",
		        resp->body_len);
	}
	bio = BIO_new(BIO_s_mem());
	if (!bio || !PEM_write_bio_X509(bio, x))
		return ossl_error_set(err, -ENOMEM, "AMD KDS: VCEK to PEM");
	n = BIO_get_mem_data(bio, &data);
	*out = strndup(data, (size_t)n);
	return *out ? 0 : skr_error_set(err, -ENOMEM, "AMD KDS: out of memory");
}

static int join_pem(const char *a, const char *b, char **out, struct skr_error *err)
{
	size_t la = strlen(a);

	if (asprintf(out, "%s%s%s", a, la && a[la - 1] != '\n' ? "\n" : "", b) < 0) {
		*out = NULL;
		return skr_error_set(err, -ENOMEM, "certificate fetch: out of memory");
	}
	return 0;
}

/* VCEK then ASK ‖ ARK of @p from KDS. */
static int fetch_amd_product(struct snp_cert_fetcher *f, const struct snp_report *report,
                             enum snp_product p, char **pem, struct skr_error *err)
{
	_cleanup_free_ char *url = NULL, *chain_url = NULL, *vcek = NULL;
	struct http_response resp = {0};
	int r;

	r = snp_kds_vcek_url(f->base, report, p, &url, err);
	if (r < 0)
		return r;
	r = fetch(f, url, NULL, &resp, err);
	if (r < 0)
		return r;
	r = vcek_to_pem(&resp, &vcek, err);
	http_response_clear(&resp);
	if (r < 0)
		return r;
	/* ASK then ARK of the product line. */
	if (asprintf(&chain_url, "%s" KDS_VCEK_PATH "/%s/cert_chain", f->base,
	             snp_product_name(p)) < 0) {
		chain_url = NULL;
		return skr_error_set(err, -ENOMEM, "AMD KDS: out of memory");
	}
	r = fetch(f, chain_url, NULL, &resp, err);
	if (r < 0)
		return r;
	r = join_pem(vcek, resp.body, pem, err);
	http_response_clear(&resp);
	return r;
}

/*
 * A v2 report cannot tell Genoa from Milan (no CPUID bytes) and snp_report_product() then says
 * Milan. With no product configured, a 404 for such a report is retried once as Genoa: KDS knows
 * each chip under its own line only.
 */
static bool product_ambiguous(const struct snp_cert_fetcher *f, const struct snp_report *report)
{
	return f->product == SNP_PRODUCT_UNKNOWN && report->version < 3 &&
	       snp_report_product(report, SNP_PRODUCT_UNKNOWN) == SNP_PRODUCT_MILAN;
}

static int fetch_amd(struct snp_cert_fetcher *f, const struct snp_report *report, char **pem,
                     struct skr_error *err)
{
	struct skr_error first = {0}, genoa = {0};
	enum snp_product p;
	int r;

	r = report_product(report, f->product, &p, err);
	if (r < 0)
		return r;
	r = fetch_amd_product(f, report, p, pem, &first);
	if (r == -ENOENT && product_ambiguous(f, report)) {
		log_info("AMD KDS has no Milan VCEK for this VERSION 2 report; asking for a Genoa "
		         "one (set the certcache product to skip this)");
		r = fetch_amd_product(f, report, SNP_PRODUCT_GENOA, pem, &genoa);
		/* Both 404: the first message names the line the report itself suggests. */
		if (r < 0 && r != -ENOENT)
			return skr_error_set(err, r, "%s", genoa.msg);
	}
	if (r < 0)
		return skr_error_set(err, r, "%s", first.msg);
	return 0;
}

static int fetch_thim(struct snp_cert_fetcher *f, char **pem, struct skr_error *err)
{
	/* IMDS refuses requests without it (a guard against SSRF through proxies). */
	static const char *const headers[] = {"Metadata: true", NULL};
	struct http_response resp = {0};
	struct snp_thim t = {0};
	int r;

	r = fetch(f, f->base, headers, &resp, err);
	if (r < 0)
		return r;
	r = snp_thim_parse(resp.body, resp.body_len, &t, err);
	http_response_clear(&resp);
	if (r < 0) {
		skr_error_prefix(err, "THIM answer from %s: ", f->base);
		return r;
	}
	r = join_pem(t.vcek_pem, t.chain_pem, pem, err);
	snp_thim_clear(&t);
	return r;
}

static int fetch_azcache(struct snp_cert_fetcher *f, const struct snp_report *report, char **pem,
                         struct skr_error *err)
{
	char chip[2 * sizeof(report->chip_id) + 1];
	_cleanup_free_ char *url = NULL;
	struct http_response resp = {0};
	int r;

	hex_encode(report->chip_id, sizeof(report->chip_id), chip);
	if (asprintf(&url, "%s/%s/certificates/%s/%" PRIx64 "?%s&%s", f->base, f->tee_type, chip,
	             report->reported_tcb, f->api_version, f->client_id) < 0) {
		url = NULL;
		return skr_error_set(err, -ENOMEM, "Azure certificate cache: out of memory");
	}
	r = fetch(f, url, NULL, &resp, err);
	if (r < 0)
		return r;
	if (!strstr(resp.body, SNP_PEM_CERT_MARKER)) {
		http_response_clear(&resp);
		return skr_error_set(
		        err, -EPROTO,
		        "Azure certificate cache: the answer holds no PEM certificate");
	}
	*pem = TAKE_PTR(resp.body);
	http_response_clear(&resp);
	return 0;
}

/* ---- on-disk cache -------------------------------------------------------------------- */

static char *cache_path(const struct snp_cert_fetcher *f, const struct snp_report *report,
                        enum snp_product product, uint64_t tcb)
{
	char chip[2 * sizeof(report->chip_id) + 1], name[256];

	hex_encode(report->chip_id, sizeof(report->chip_id), chip);
	snprintf(name, sizeof(name), "%s-%s-%s-%016" PRIx64 ".pem", type_key(f->type),
	         snp_product_name(product), chip, tcb);
	return path_join(f->cache_dir, name);
}

static struct snp_cert_chain *cache_load_file(const struct snp_cert_fetcher *f, const char *path)
{
	_cleanup_(snp_cert_chain_freep) struct snp_cert_chain *chain = NULL;
	_cleanup_free_ char *pem = NULL;
	struct skr_error perr = {0};
	size_t len;
	int r;

	r = read_file(path, FETCH_MAX_BODY, &pem, &len);
	if (r == -ENOENT)
		return NULL;
	if (r < 0) {
		log_warn("certcache: cannot read %s (%s); fetching again", path, skr_strerror(r));
		return NULL;
	}
	r = snp_cert_chain_from_pem(pem, len, &chain, &perr);
	if (r >= 0 && !snp_cert_chain_has_leaf(chain))
		r = skr_error_set(&perr, -EINVAL, "no VCEK in it");
	if (r < 0) {
		log_warn("certcache: ignoring unusable cache file %s: %s", path, perr.msg);
		return NULL;
	}
	/* Written only after verification, but the roots or the clock may have changed since. */
	r = snp_cert_chain_verify_trusted(chain, f->trust, &perr);
	if (r < 0) {
		log_warn("certcache: deleting %s, its chain no longer verifies: %s", path,
		         perr.msg);
		if (unlink(path) < 0 && errno != ENOENT)
			log_warn("certcache: cannot delete %s: %s", path, skr_strerror(errno));
		return NULL;
	}
	log_debug("certcache: served from %s", path);
	return TAKE_PTR(chain);
}

static struct snp_cert_chain *cache_load(const struct snp_cert_fetcher *f,
                                         const struct snp_report *report)
{
	enum snp_product p = snp_report_product(report, f->product);
	_cleanup_free_ char *path = cache_path(f, report, p, report->reported_tcb);
	struct snp_cert_chain *chain;

	if (!path)
		return NULL;
	chain = cache_load_file(f, path);
	/* A VERSION 2 Genoa report: stored under the product its VCEK names (cache_store). */
	if (!chain && product_ambiguous(f, report)) {
		_cleanup_free_ char *genoa =
		        cache_path(f, report, SNP_PRODUCT_GENOA, report->reported_tcb);

		if (genoa)
			chain = cache_load_file(f, genoa);
	}
	return chain;
}

/*
 * Remember @chain under the chip and the TCB its leaf certifies, once it verified up to a
 * trusted ARK. A leaf for another chip (a THIM answer from elsewhere) or a chain that does not
 * verify is returned to the caller, who will reject it, but not cached.
 */
static void cache_store(const struct snp_cert_fetcher *f, const struct snp_report *report,
                        const struct snp_cert_chain *chain)
{
	_cleanup_free_ char *path = NULL, *pem = NULL;
	struct snp_vcek_info info;
	struct skr_error e = {0};
	enum snp_product p;
	int r;

	if (snp_cert_chain_leaf_info(chain, &info, &e) < 0) {
		log_warn("certcache: not caching a chain whose leaf is unreadable: %s", e.msg);
		return;
	}
	if (info.hwid_len == 0 || info.hwid_len > sizeof(report->chip_id) ||
	    memcmp(info.hwid, report->chip_id, info.hwid_len) != 0) {
		log_warn("certcache: not caching a VCEK issued for another chip");
		return;
	}
	if (snp_cert_chain_verify_trusted(chain, f->trust, &e) < 0) {
		log_warn("certcache: not caching the %s answer, its chain does not verify: %s",
		         type_label(f->type), e.msg);
		return;
	}
	p = snp_report_product(report,
	                       info.product != SNP_PRODUCT_UNKNOWN ? info.product : f->product);
	path = cache_path(f, report, p, info.tcb_raw);
	if (!path || snp_cert_chain_to_pem(chain, &pem, &e) < 0) {
		log_warn("certcache: cannot serialize the chain: %s", e.msg[0] ? e.msg : "ENOMEM");
		return;
	}
	r = write_file_atomic(path, pem, strlen(pem), 0600);
	if (r < 0)
		log_warn("certcache: cannot write %s: %s", path, skr_strerror(r));
	else
		log_debug("certcache: stored %s", path);
}

int snp_cert_fetcher_get(struct snp_cert_fetcher *f, const struct snp_report *report,
                         struct snp_cert_chain **out, struct skr_error *err)
{
	_cleanup_(snp_cert_chain_freep) struct snp_cert_chain *chain = NULL;
	_cleanup_free_ char *pem = NULL;
	int r;

	*out = NULL;
	if (!f || !report)
		return skr_error_set(err, -EINVAL, "certificate fetch: no fetcher or no report");
	if (f->type == SNP_CERTCACHE_NONE)
		return skr_error_set(
		        err, -ENOENT,
		        "certificate fetch: no certificate source configured (certcache "
		        "endpoint_type is empty; set AMD, AzCache or LocalTHIM)");
	/* THIM serves the local host whatever the report says; the others are asked by chip. */
	if (f->type != SNP_CERTCACHE_LOCAL_THIM) {
		r = check_fetchable(report, err);
		if (r < 0)
			return r;
	}
	if (f->cache_dir && !all_zero(report->chip_id, sizeof(report->chip_id))) {
		chain = cache_load(f, report);
		if (chain) {
			*out = TAKE_PTR(chain);
			return 0;
		}
	}

	switch (f->type) {
	case SNP_CERTCACHE_AMD:
		r = fetch_amd(f, report, &pem, err);
		break;
	case SNP_CERTCACHE_LOCAL_THIM:
		r = fetch_thim(f, &pem, err);
		break;
	case SNP_CERTCACHE_AZCACHE:
		r = fetch_azcache(f, report, &pem, err);
		break;
	default:
		r = skr_error_set(err, -EINVAL, "certificate fetch: unknown source %d", f->type);
	}
	if (r < 0)
		return r;
	r = snp_cert_chain_from_pem(pem, strlen(pem), &chain, err);
	if (r < 0) {
		skr_error_prefix(err, "%s answer: ", type_label(f->type));
		return r;
	}
	if (!snp_cert_chain_has_leaf(chain))
		return skr_error_set(err, -EPROTO, "%s answer holds no VCEK certificate",
		                     type_label(f->type));
	log_info("certcache: fetched the certificate chain from %s", type_label(f->type));
	if (f->cache_dir && !all_zero(report->chip_id, sizeof(report->chip_id)))
		cache_store(f, report, chain);
	*out = TAKE_PTR(chain);
	return 0;
}
