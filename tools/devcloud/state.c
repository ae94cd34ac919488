/* SPDX-License-Identifier: MIT */
/*
 * `devcloud init`: everything a devcloud needs, created once in a private directory so that
 * `serve` is fast and restarts keep the same CA (clients keep trusting ca.pem) and the same
 * virtual platform (its VCEK stays valid).
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "b64.h"
#include "cleanup.h"
#include "devcloud.h"
#include "fileio.h"
#include "ossl.h"

/* Names every certificate carries besides --hostname: what a local client dials. */
static const char *const default_hostnames[] = {"localhost", "127.0.0.1", "::1"};

/* The files `init` writes; --force removes these (and platform/, keys/) and nothing else. */
static const char *const state_files[] = {
        "ca.pem",          "ca-key.pem",       "server.pem",     "server-key.pem", "signing.pem",
        "signing-key.pem", "devcloud.json",    "endpoints.json", "vault.pem",      "vault-key.pem",
        "identity.json",   "identity-key.pem", "keystore.key",
};

/* Directories `init` creates; --force removes them with their content. */
static const char *const state_dirs[] = {"platform", "keys"};

void devcloud_init_options_default(struct devcloud_init_options *o)
{
	memset(o, 0, sizeof(*o));
	o->product = SNP_PRODUCT_MILAN;
	o->report_version = 3;
	o->compliance_status = DEVCLOUD_DEFAULT_COMPLIANCE;
}

static bool dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	bool empty = true;

	if (!d)
		return true;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			empty = false;
			break;
		}
	}
	closedir(d);
	return empty;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path) < 0 ? -1 : 0;
	return unlink(path) < 0 ? -1 : 0;
}

static int remove_previous_state(const char *dir, struct skr_error *err)
{
	for (size_t i = 0; i < ELEMENTSOF(state_files); i++) {
		_cleanup_free_ char *p = path_join(dir, state_files[i]);

		if (!p)
			return skr_error_set(err, -ENOMEM, "out of memory");
		if (unlink(p) < 0 && errno != ENOENT)
			return skr_error_set(err, -errno, "--force: cannot remove %s: %s", p,
			                     strerror(errno));
	}
	for (size_t i = 0; i < ELEMENTSOF(state_dirs); i++) {
		_cleanup_free_ char *p = path_join(dir, state_dirs[i]);

		if (!p)
			return skr_error_set(err, -ENOMEM, "out of memory");
		if (access(p, F_OK) == 0 && nftw(p, remove_entry, 16, FTW_DEPTH | FTW_PHYS) < 0)
			return skr_error_set(err, -errno, "--force: cannot remove %s: %s", p,
			                     strerror(errno));
	}
	return 0;
}

static int write_cert(const char *dir, const char *name, X509 *cert, struct skr_error *err)
{
	_cleanup_free_ char *path = path_join(dir, name), *pem = NULL;
	int r;

	if (!path)
		return skr_error_set(err, -ENOMEM, "out of memory");
	r = devcloud_pki_cert_pem(cert, &pem, err);
	if (r < 0)
		return r;
	r = write_file_atomic(path, pem, strlen(pem), 0644);
	if (r < 0)
		return skr_error_set(err, r, "cannot write %s: %s", path, strerror(-r));
	return 0;
}

static int write_key(const char *dir, const char *name, EVP_PKEY *key, struct skr_error *err)
{
	_cleanup_free_ char *path = path_join(dir, name);
	_cleanup_secret_ struct secret *pem = NULL;
	int r;

	if (!path)
		return skr_error_set(err, -ENOMEM, "out of memory");
	r = devcloud_pki_key_pem(key, &pem, err);
	if (r < 0)
		return r;
	r = write_file_atomic(path, pem->data, pem->len, 0600);
	if (r < 0)
		return skr_error_set(err, r, "cannot write %s: %s", path, strerror(-r));
	return 0;
}

static bool hostname_valid(const char *h)
{
	size_t len = strlen(h);

	if (len == 0 || len > 253)
		return false;
	/* DNS names, IPv4/IPv6 literals; nothing that could confuse the SAN config syntax. */
	for (const char *p = h; *p; p++) {
		char c = *p;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.' || c == ':'))
			return false;
	}
	return true;
}

static int collect_hostnames(const struct devcloud_init_options *o, struct devcloud_settings *s,
                             struct skr_error *err)
{
	const char *all[DEVCLOUD_HOSTNAMES_MAX + ELEMENTSOF(default_hostnames)];
	size_t n = 0;

	for (size_t i = 0; i < ELEMENTSOF(default_hostnames); i++)
		all[n++] = default_hostnames[i];
	for (size_t i = 0; i < o->n_hostnames; i++) {
		bool dup = false;

		if (!hostname_valid(o->hostnames[i]))
			return skr_error_set(err, -EINVAL,
			                     "--hostname '%s' is not a DNS name or IP address",
			                     o->hostnames[i]);
		for (size_t j = 0; j < n; j++)
			dup = dup || strcasecmp(all[j], o->hostnames[i]) == 0;
		if (!dup)
			all[n++] = o->hostnames[i];
	}
	if (n > DEVCLOUD_HOSTNAMES_MAX)
		return skr_error_set(err, -E2BIG,
		                     "at most %d host names (including localhost, "
		                     "127.0.0.1 and ::1)",
		                     DEVCLOUD_HOSTNAMES_MAX);
	for (size_t i = 0; i < n; i++) {
		s->hostnames[i] = strdup(all[i]);
		if (!s->hostnames[i])
			return skr_error_set(err, -ENOMEM, "out of memory");
		s->n_hostnames++;
	}
	return 0;
}

static int generate_pki(const char *dir, const struct devcloud_settings *s, json_object *summary,
                        struct skr_error *err)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *ca_key = NULL, *tls_key = NULL, *sign_key = NULL;
	_cleanup_(X509_freep) X509 *ca = NULL, *tls = NULL, *sign = NULL;
	_cleanup_free_ char *kid = NULL;
	int r;

	ca_key = EVP_EC_gen("P-256");
	tls_key = EVP_EC_gen("P-256");
	/* RS256 is what MAA signs with, and what token verifiers expect from it. */
	sign_key = EVP_RSA_gen(2048);
	if (!ca_key || !tls_key || !sign_key)
		return ossl_error_set(err, -ENOMEM, "key generation");

	r = devcloud_pki_issue(DEVCLOUD_CERT_CA, "devcloud local CA", ca_key, NULL, NULL, NULL, 0,
	                       3650, &ca, err);
	if (r == 0)
		r = devcloud_pki_issue(DEVCLOUD_CERT_TLS_SERVER, "localhost", tls_key, ca, ca_key,
		                       (const char *const *)s->hostnames, s->n_hostnames, 825, &tls,
		                       err);
	if (r == 0)
		r = devcloud_pki_issue(DEVCLOUD_CERT_TOKEN_SIGNING, "devcloud attestation signing",
		                       sign_key, ca, ca_key, NULL, 0, 825, &sign, err);
	if (r < 0)
		return r;

	if ((r = write_key(dir, "ca-key.pem", ca_key, err)) < 0 ||
	    (r = write_cert(dir, "ca.pem", ca, err)) < 0 ||
	    (r = write_key(dir, "server-key.pem", tls_key, err)) < 0 ||
	    (r = write_cert(dir, "server.pem", tls, err)) < 0 ||
	    (r = write_key(dir, "signing-key.pem", sign_key, err)) < 0 ||
	    (r = write_cert(dir, "signing.pem", sign, err)) < 0)
		return r;

	r = devcloud_pki_thumbprint(sign, &kid, err);
	if (r < 0)
		return r;
	json_object_object_add(summary, "signing_kid", json_object_new_string(kid));
	return 0;
}

static int create_platform(const char *dir, const struct devcloud_init_options *o,
                           json_object *summary, struct skr_error *err)
{
	_cleanup_free_ char *platform_dir = path_join(dir, "platform");
	struct snp_virtual_params params;
	struct snp_virtual *v = NULL;
	char hex[129];
	int r;

	if (!platform_dir)
		return skr_error_set(err, -ENOMEM, "out of memory");
	snp_virtual_params_default(&params);
	params.product = o->product;
	params.report_version = o->report_version;
	memcpy(params.host_data, o->host_data, sizeof(params.host_data));
	if (o->debuggable)
		params.policy |= SNP_POLICY_DEBUG;
	r = snp_virtual_create(platform_dir, &params, err);
	if (r < 0)
		return skr_error_prefix(err, "virtual platform %s: ", platform_dir);

	/* Read back what the platform chose (random CHIP_ID and MEASUREMENT). */
	r = snp_virtual_open(platform_dir, &v, err);
	if (r < 0)
		return skr_error_prefix(err, "virtual platform %s: ", platform_dir);
	const struct snp_virtual_params *p = snp_virtual_params(v);
	json_object *pj = json_object_new_object();

	json_object_object_add(summary, "platform", pj);
	json_object_object_add(pj, "dir", json_object_new_string(platform_dir));
	json_object_object_add(pj, "product", json_object_new_string(snp_product_name(p->product)));
	json_object_object_add(pj, "report_version", json_object_new_int((int)p->report_version));
	hex_encode(p->chip_id, sizeof(p->chip_id), hex);
	json_object_object_add(pj, "chip_id", json_object_new_string(hex));
	hex_encode(p->measurement, sizeof(p->measurement), hex);
	json_object_object_add(pj, "measurement", json_object_new_string(hex));
	hex_encode(p->host_data, sizeof(p->host_data), hex);
	json_object_object_add(pj, "host_data", json_object_new_string(hex));
	snprintf(hex, sizeof(hex), "%016llx",
	         (unsigned long long)snp_tcb_encode(&p->tcb, p->product));
	json_object_object_add(pj, "tcb", json_object_new_string(hex));
	json_object_object_add(pj, "debuggable",
	                       json_object_new_boolean((p->policy & SNP_POLICY_DEBUG) != 0));
	snp_virtual_free(v);
	return 0;
}

int devcloud_state_init(const struct devcloud_init_options *o, json_object **summary_out,
                        struct skr_error *err)
{
	_cleanup_json_ json_object *summary = NULL;
	_cleanup_free_ char *settings_path = NULL, *ca_path = NULL;
	struct devcloud_settings s = {0};
	struct stat st;
	int r;

	if (!o->state_dir || !*o->state_dir)
		return skr_error_set(err, -EINVAL, "--state DIR is required");
	if (o->report_version < SNP_REPORT_VERSION_MIN ||
	    o->report_version > SNP_REPORT_VERSION_MAX)
		return skr_error_set(err, -EINVAL, "--report-version must be %d..%d, not %u",
		                     SNP_REPORT_VERSION_MIN, SNP_REPORT_VERSION_MAX,
		                     o->report_version);
	if (o->product == SNP_PRODUCT_UNKNOWN)
		return skr_error_set(err, -EINVAL, "--product must be Milan, Genoa or Turin");
	if (!o->compliance_status || !*o->compliance_status)
		return skr_error_set(err, -EINVAL, "--compliance-status must not be empty");

	if (stat(o->state_dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return skr_error_set(err, -ENOTDIR,
			                     "--state %s exists and is not a directory",
			                     o->state_dir);
		if (!dir_is_empty(o->state_dir)) {
			if (!o->force)
				return skr_error_set(
				        err, -EEXIST,
				        "state directory %s is not empty; pass --force to "
				        "replace its devcloud state (a new CA: clients "
				        "must trust the new ca.pem)",
				        o->state_dir);
			r = remove_previous_state(o->state_dir, err);
			if (r < 0)
				return r;
		}
	}
	r = mkdir_p(o->state_dir, 0700);
	if (r < 0)
		return skr_error_set(err, r, "cannot create %s: %s", o->state_dir, strerror(-r));
	/* mkdir_p leaves an existing directory's mode alone: the state holds private keys. */
	if (chmod(o->state_dir, 0700) < 0)
		return skr_error_set(err, -errno, "cannot chmod %s: %s", o->state_dir,
		                     strerror(errno));

	s.compliance_status = strdup(o->compliance_status);
	if (!s.compliance_status) {
		r = skr_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	s.product = o->product;
	s.report_version = o->report_version;
	s.debuggable = o->debuggable;
	memcpy(s.host_data, o->host_data, sizeof(s.host_data));
	r = collect_hostnames(o, &s, err);
	if (r < 0)
		goto out;

	summary = json_object_new_object();
	if (!summary) {
		r = skr_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	json_object_object_add(summary, "state_dir", json_object_new_string(o->state_dir));

	r = generate_pki(o->state_dir, &s, summary, err);
	if (r < 0)
		goto out;
	r = create_platform(o->state_dir, o, summary, err);
	if (r < 0)
		goto out;
	r = devcloud_vault_state_init(o->state_dir, &s, err);
	if (r < 0)
		goto out;
	r = devcloud_identity_state_init(o->state_dir, summary, err);
	if (r < 0)
		goto out;

	settings_path = path_join(o->state_dir, "devcloud.json");
	ca_path = path_join(o->state_dir, "ca.pem");
	if (!settings_path || !ca_path) {
		r = skr_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	r = devcloud_settings_save(settings_path, &s, err);
	if (r < 0)
		goto out;
	json_object_object_add(summary, "ca", json_object_new_string(ca_path));
	json_object_object_add(summary, "settings", devcloud_settings_to_json(&s));
	if (summary_out)
		*summary_out = TAKE_PTR(summary);
out:
	devcloud_settings_clear(&s);
	return r;
}
