/* SPDX-License-Identifier: MIT */
/*
 * The key vault's store: every imported key version in memory and, sealed, in the state
 * directory, so keys survive a restart and a copy of keys/ alone reveals nothing.
 *
 *   keystore.key               32 random bytes (0600): the AES-256-GCM sealing key
 *   keys/NAME.VERSION.sealed   "DCKV" 0x01 ‖ nonce (12) ‖ AES-256-GCM(plaintext) ‖ tag (16),
 *                              AAD "devcloud-kv-v1:NAME/VERSION" (a file renamed to another
 *                              key fails the tag check), plaintext = u32 BE length ‖ metadata
 *                              JSON (no secret) ‖ key material (raw oct bytes or PKCS#8 DER)
 *
 * The material is kept out of the JSON so it never sits in a json-c buffer; it lives in locked
 * memory from import to release. Each version is one file written with write_file_atomic()
 * (temporary file, fsync, rename, fsync of the directory): a crash mid-import leaves the
 * previous versions and at most a stray temporary file, which loading ignores. A file that
 * does not decrypt (tampered, truncated, another state's) is logged and skipped.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "b64.h"
#include "cleanup.h"
#include "devcloud.h"
#include "fileio.h"
#include "json_util.h"
#include "log.h"
#include "ossl.h"
#include "secret.h"

#define SEAL_KEY_SIZE 32
#define NONCE_SIZE 12
#define TAG_SIZE 16
#define MAGIC "DCKV\x01"
#define MAGIC_SIZE 5
#define AAD_PREFIX "devcloud-kv-v1:"
#define SEALED_SUFFIX ".sealed"
#define SEALED_MAX (1024u * 1024)

struct devcloud_keystore {
	pthread_mutex_t lock;
	char *dir;
	struct secret *seal_key;
	struct devcloud_kv_key **keys;
	size_t n, cap;
	uint64_t next_seq;
};

static void key_free(struct devcloud_kv_key *k)
{
	if (!k)
		return;
	free(k->name);
	devcloud_kv_import_clear(&k->imp);
	skr_policy_free(k->policy);
	free(k);
}

DEFINE_CLEANUP_FUNC(struct devcloud_kv_key *, key_free)

void devcloud_keystore_free(struct devcloud_keystore *ks)
{
	if (!ks)
		return;
	for (size_t i = 0; i < ks->n; i++)
		key_free(ks->keys[i]);
	free(ks->keys);
	free(ks->dir);
	secret_free(ks->seal_key);
	pthread_mutex_destroy(&ks->lock);
	free(ks);
}

bool devcloud_kv_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > DEVCLOUD_KV_NAME_MAX)
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-'))
			return false;
	return true;
}

static bool version_valid(const char *v)
{
	if (strlen(v) != DEVCLOUD_KV_VERSION_LEN)
		return false;
	for (const char *p = v; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

/* ---------------------------------------------------------------------------------------------
 * Sealing
 * ------------------------------------------------------------------------------------------- */

static char *aad_for(const char *name, const char *version)
{
	char *aad;

	if (asprintf(&aad, AAD_PREFIX "%s/%s", name, version) < 0)
		return NULL;
	return aad;
}

static int seal(const struct secret *key, const char *aad, const struct secret *plain,
                uint8_t **out, size_t *out_len, struct skr_error *err)
{
	_cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	size_t total = MAGIC_SIZE + NONCE_SIZE + plain->len + TAG_SIZE;
	_cleanup_free_ uint8_t *buf = malloc(total);
	uint8_t *nonce, *ct;
	int n, fin;

	if (!ctx || !buf)
		return skr_error_set(err, -ENOMEM, "seal: out of memory");
	memcpy(buf, MAGIC, MAGIC_SIZE);
	nonce = buf + MAGIC_SIZE;
	ct = nonce + NONCE_SIZE;
	if (RAND_bytes(nonce, NONCE_SIZE) != 1)
		return ossl_error_set(err, -EIO, "seal: nonce");
	if (EVP_EncryptInit_ex2(ctx, EVP_aes_256_gcm(), key->data, nonce, NULL) != 1 ||
	    EVP_EncryptUpdate(ctx, NULL, &n, (const uint8_t *)aad, (int)strlen(aad)) != 1 ||
	    EVP_EncryptUpdate(ctx, ct, &n, plain->data, (int)plain->len) != 1 ||
	    EVP_EncryptFinal_ex(ctx, ct + n, &fin) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_SIZE, ct + plain->len) != 1)
		return ossl_error_set(err, -EIO, "seal: AES-256-GCM");
	*out = TAKE_PTR(buf);
	*out_len = total;
	return 0;
}

static int unseal(const struct secret *key, const char *aad, const uint8_t *in, size_t len,
                  struct secret **out, struct skr_error *err)
{
	_cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	_cleanup_secret_ struct secret *plain = NULL;
	const uint8_t *nonce, *ct;
	size_t ct_len;
	int n, fin;

	if (len < MAGIC_SIZE + NONCE_SIZE + TAG_SIZE || memcmp(in, MAGIC, MAGIC_SIZE) != 0)
		return skr_error_set(err, -EBADMSG, "not a sealed key file (bad header or size)");
	nonce = in + MAGIC_SIZE;
	ct = nonce + NONCE_SIZE;
	ct_len = len - MAGIC_SIZE - NONCE_SIZE - TAG_SIZE;
	plain = secret_new(ct_len);
	if (!ctx || !plain)
		return skr_error_set(err, -ENOMEM, "unseal: out of memory");
	if (EVP_DecryptInit_ex2(ctx, EVP_aes_256_gcm(), key->data, nonce, NULL) != 1 ||
	    EVP_DecryptUpdate(ctx, NULL, &n, (const uint8_t *)aad, (int)strlen(aad)) != 1 ||
	    EVP_DecryptUpdate(ctx, plain->data, &n, ct, (int)ct_len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_SIZE, (void *)(ct + ct_len)) != 1)
		return ossl_error_set(err, -EIO, "unseal: AES-256-GCM");
	if (EVP_DecryptFinal_ex(ctx, plain->data + n, &fin) != 1)
		return skr_error_set(err, -EBADMSG,
		                     "authentication tag mismatch (tampered, or sealed by another "
		                     "state's keystore.key)");
	*out = TAKE_PTR(plain);
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Metadata ⇄ key
 * ------------------------------------------------------------------------------------------- */

static json_object *metadata_json(const struct devcloud_kv_key *k)
{
	_cleanup_json_ json_object *m = json_object_new_object();
	json_object *ops = json_object_new_array();
	const struct devcloud_kv_import *imp = &k->imp;

	if (!m || devcloud_json_add(m, "ops", ops) < 0)
		return NULL;
	for (size_t i = 0; i < imp->n_key_ops; i++)
		if (json_object_array_add(ops, json_object_new_string(imp->key_ops[i])) < 0)
			return NULL;
	if (devcloud_json_add(m, "name", json_object_new_string(k->name)) < 0 ||
	    devcloud_json_add(m, "version", json_object_new_string(k->version)) < 0 ||
	    devcloud_json_add(m, "seq", json_object_new_int64((int64_t)k->seq)) < 0 ||
	    devcloud_json_add(m, "created", json_object_new_int64(k->created)) < 0 ||
	    devcloud_json_add(m, "updated", json_object_new_int64(k->updated)) < 0 ||
	    devcloud_json_add(m, "kty",
	                      json_object_new_string(devcloud_kv_kty_name(imp->kty, false))) < 0 ||
	    devcloud_json_add(m, "hsm", json_object_new_boolean(imp->hsm)) < 0 ||
	    devcloud_json_add(m, "bits", json_object_new_int((int)imp->bits)) < 0 ||
	    devcloud_json_add(m, "public", json_object_get(imp->public_jwk)) < 0 ||
	    devcloud_json_add(m, "exportable", json_object_new_boolean(imp->exportable)) < 0 ||
	    devcloud_json_add(m, "enabled", json_object_new_boolean(imp->enabled)) < 0)
		return NULL;
	if (imp->tags && devcloud_json_add(m, "tags", json_object_get(imp->tags)) < 0)
		return NULL;
	if (imp->has_policy) {
		_cleanup_free_ char *data = NULL;
		json_object *rp = json_object_new_object();

		if (devcloud_json_add(m, "release_policy", rp) < 0 ||
		    b64_encode(imp->policy_json, imp->policy_len, B64_URL_NOPAD, &data) < 0 ||
		    devcloud_json_add(rp, "contentType",
		                      json_object_new_string(imp->policy_content_type)) < 0 ||
		    devcloud_json_add(rp, "data", json_object_new_string(data)) < 0 ||
		    devcloud_json_add(rp, "immutable", json_object_new_boolean(imp->immutable)) < 0)
			return NULL;
	}
	return TAKE_PTR(m);
}

static int key_from_metadata(json_object *m, const uint8_t *material, size_t material_len,
                             struct devcloud_kv_key **out, struct skr_error *err)
{
	_cleanup_(key_freep) struct devcloud_kv_key *k = calloc(1, sizeof(*k));
	json_object *ops, *pub, *rp, *tags, *v;
	const char *name, *version, *kty, *ct, *data;
	int r;

	if (!k)
		return skr_error_set(err, -ENOMEM, "out of memory");
	r = json_get_string(m, "name", true, &name, err);
	if (r == 0)
		r = json_get_string(m, "version", true, &version, err);
	if (r == 0)
		r = json_get_string(m, "kty", true, &kty, err);
	if (r == 0)
		r = json_get_bool(m, "hsm", true, &k->imp.hsm, err);
	if (r == 0)
		r = json_get_bool(m, "exportable", true, &k->imp.exportable, err);
	if (r == 0)
		r = json_get_bool(m, "enabled", true, &k->imp.enabled, err);
	if (r == 0)
		r = json_get_object(m, "public", true, &pub, err);
	if (r < 0)
		return r;
	if (!devcloud_kv_name_valid(name) || !version_valid(version))
		return skr_error_set(err, -EINVAL, "invalid name or version");
	k->name = strdup(name);
	snprintf(k->version, sizeof(k->version), "%s", version);
	if (strcmp(kty, "oct") == 0)
		k->imp.kty = DEVCLOUD_KTY_OCT;
	else if (strcmp(kty, "RSA") == 0)
		k->imp.kty = DEVCLOUD_KTY_RSA;
	else if (strcmp(kty, "EC") == 0)
		k->imp.kty = DEVCLOUD_KTY_EC;
	else
		return skr_error_set(err, -EINVAL, "unknown kty '%s'", kty);
	if ((v = json_object_object_get(m, "seq")))
		k->seq = (uint64_t)json_object_get_int64(v);
	if ((v = json_object_object_get(m, "created")))
		k->created = json_object_get_int64(v);
	if ((v = json_object_object_get(m, "updated")))
		k->updated = json_object_get_int64(v);
	if ((v = json_object_object_get(m, "bits")))
		k->imp.bits = (unsigned)json_object_get_int(v);
	if (!json_object_object_get_ex(m, "ops", &ops) ||
	    !json_object_is_type(ops, json_type_array) ||
	    json_object_array_length(ops) > SKR_KEY_OPS_MAX)
		return skr_error_set(err, -EINVAL, "'ops' is not an array");
	for (size_t i = 0; i < json_object_array_length(ops); i++) {
		k->imp.key_ops[i] =
		        strdup(json_object_get_string(json_object_array_get_idx(ops, i)));
		if (!k->imp.key_ops[i])
			return skr_error_set(err, -ENOMEM, "out of memory");
		k->imp.n_key_ops++;
	}
	k->imp.public_jwk = json_object_get(pub);
	if (json_object_object_get_ex(m, "tags", &tags))
		k->imp.tags = json_object_get(tags);
	if (json_object_object_get_ex(m, "release_policy", &rp)) {
		uint8_t *raw = NULL;
		size_t len = 0;

		r = json_get_string(rp, "contentType", true, &ct, err);
		if (r == 0)
			r = json_get_string(rp, "data", true, &data, err);
		if (r == 0)
			r = json_get_bool(rp, "immutable", true, &k->imp.immutable, err);
		if (r < 0)
			return r;
		if (b64_decode(data, strlen(data), B64_ACCEPT_URL, &raw, &len) < 0)
			return skr_error_set(err, -EINVAL, "release_policy.data is not base64url");
		k->imp.policy_json = (char *)raw;
		k->imp.policy_len = len;
		k->imp.has_policy = true;
		k->imp.policy_content_type = strdup(ct);
		r = skr_policy_parse(k->imp.policy_json, len, &k->policy, err);
		if (r < 0)
			return skr_error_prefix(err, "release policy: ");
	}
	k->imp.material = secret_new_copy(material, material_len);
	if (!k->name || !k->imp.material || (k->imp.has_policy && !k->imp.policy_content_type))
		return skr_error_set(err, -ENOMEM, "out of memory");
	*out = TAKE_PTR(k);
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Files
 * ------------------------------------------------------------------------------------------- */

static char *sealed_path(const struct devcloud_keystore *ks, const char *name, const char *version)
{
	char *p;

	if (asprintf(&p, "%s/%s.%s" SEALED_SUFFIX, ks->dir, name, version) < 0)
		return NULL;
	return p;
}

static int write_sealed(struct devcloud_keystore *ks, const struct devcloud_kv_key *k,
                        struct skr_error *err)
{
	_cleanup_json_ json_object *meta = metadata_json(k);
	_cleanup_free_ char *aad = aad_for(k->name, k->version);
	_cleanup_free_ char *path = sealed_path(ks, k->name, k->version);
	_cleanup_secret_ struct secret *plain = NULL;
	_cleanup_free_ uint8_t *sealed = NULL;
	const char *text = meta ? json_compact(meta) : NULL;
	size_t text_len, sealed_len = 0;
	int r;

	if (!text || !aad || !path)
		return skr_error_set(err, -ENOMEM, "out of memory");
	text_len = strlen(text);
	plain = secret_new(4 + text_len + k->imp.material->len);
	if (!plain)
		return skr_error_set(err, -ENOMEM, "out of memory");
	plain->data[0] = (uint8_t)(text_len >> 24);
	plain->data[1] = (uint8_t)(text_len >> 16);
	plain->data[2] = (uint8_t)(text_len >> 8);
	plain->data[3] = (uint8_t)text_len;
	memcpy(plain->data + 4, text, text_len);
	memcpy(plain->data + 4 + text_len, k->imp.material->data, k->imp.material->len);
	r = seal(ks->seal_key, aad, plain, &sealed, &sealed_len, err);
	if (r < 0)
		return r;
	r = write_file_atomic(path, sealed, sealed_len, 0600);
	if (r < 0)
		return skr_error_set(err, r, "cannot write %s: %s", path, strerror(-r));
	return 0;
}

/* NAME.VERSION.sealed → name and version, or false for anything else (temporary files). */
static bool split_file_name(const char *file, char *name, size_t name_size, char *version)
{
	size_t len = strlen(file), suffix = strlen(SEALED_SUFFIX);
	const char *dot;

	if (len <= suffix + 1 + DEVCLOUD_KV_VERSION_LEN ||
	    strcmp(file + len - suffix, SEALED_SUFFIX) != 0)
		return false;
	dot = file + len - suffix - DEVCLOUD_KV_VERSION_LEN - 1;
	if (*dot != '.' || (size_t)(dot - file) >= name_size)
		return false;
	memcpy(name, file, (size_t)(dot - file));
	name[dot - file] = '\0';
	memcpy(version, dot + 1, DEVCLOUD_KV_VERSION_LEN);
	version[DEVCLOUD_KV_VERSION_LEN] = '\0';
	return devcloud_kv_name_valid(name) && version_valid(version);
}

static int append(struct devcloud_keystore *ks, struct devcloud_kv_key *k)
{
	if (ks->n == ks->cap) {
		size_t cap = ks->cap ? ks->cap * 2 : 16;
		struct devcloud_kv_key **nk = realloc(ks->keys, cap * sizeof(*nk));

		if (!nk)
			return -ENOMEM;
		ks->keys = nk;
		ks->cap = cap;
	}
	ks->keys[ks->n++] = k;
	if (k->seq >= ks->next_seq)
		ks->next_seq = k->seq + 1;
	return 0;
}

static int load_one(struct devcloud_keystore *ks, const char *file, const char *name,
                    const char *version, struct skr_error *err)
{
	_cleanup_free_ char *path = path_join(ks->dir, file), *aad = aad_for(name, version);
	_cleanup_free_ char *data = NULL;
	_cleanup_secret_ struct secret *plain = NULL;
	_cleanup_json_ json_object *meta = NULL;
	struct devcloud_kv_key *k = NULL;
	size_t len, meta_len;
	int r;

	if (!path || !aad)
		return skr_error_set(err, -ENOMEM, "out of memory");
	r = read_file(path, SEALED_MAX, &data, &len);
	if (r < 0)
		return skr_error_set(err, r, "cannot read: %s", strerror(-r));
	r = unseal(ks->seal_key, aad, (const uint8_t *)data, len, &plain, err);
	if (r < 0)
		return r;
	if (plain->len < 4)
		return skr_error_set(err, -EBADMSG, "sealed content too short");
	meta_len = (size_t)plain->data[0] << 24 | (size_t)plain->data[1] << 16 |
	           (size_t)plain->data[2] << 8 | plain->data[3];
	if (meta_len > plain->len - 4)
		return skr_error_set(err, -EBADMSG, "sealed metadata length out of range");
	r = json_parse((const char *)plain->data + 4, meta_len, "key metadata", &meta, err);
	if (r < 0)
		return r;
	r = key_from_metadata(meta, plain->data + 4 + meta_len, plain->len - 4 - meta_len, &k, err);
	if (r < 0)
		return r;
	if (strcmp(k->name, name) != 0 || strcmp(k->version, version) != 0) {
		key_free(k);
		return skr_error_set(err, -EBADMSG, "metadata names another key");
	}
	if (devcloud_keystore_find(ks, name, version)) {
		key_free(k);
		return skr_error_set(err, -EEXIST, "duplicate version");
	}
	r = append(ks, k);
	if (r < 0) {
		key_free(k);
		return skr_error_set(err, r, "out of memory");
	}
	return 0;
}

static int load_all(struct devcloud_keystore *ks, struct skr_error *err)
{
	DIR *d = opendir(ks->dir);
	struct dirent *e;

	if (!d)
		return skr_error_set(err, -errno, "cannot open %s: %s", ks->dir, strerror(errno));
	while ((e = readdir(d))) {
		char name[DEVCLOUD_KV_NAME_MAX + 1], version[DEVCLOUD_KV_VERSION_LEN + 1];
		struct skr_error lerr = {0};

		if (e->d_name[0] == '.')
			continue;
		if (!split_file_name(e->d_name, name, sizeof(name), version)) {
			/* A temporary file of an import a crash interrupted: never a key. */
			log_debug("keystore: ignoring %s/%s", ks->dir, e->d_name);
			continue;
		}
		if (load_one(ks, e->d_name, name, version, &lerr) < 0) {
			if (lerr.code == -ENOMEM) {
				closedir(d);
				return skr_error_set(err, -ENOMEM, "keystore: out of memory");
			}
			log_error("keystore: skipping %s/%s: %s", ks->dir, e->d_name,
			          skr_error_message(&lerr));
		}
	}
	closedir(d);
	return 0;
}

static int load_seal_key(const char *state_dir, struct secret **out, struct skr_error *err)
{
	_cleanup_free_ char *path = path_join(state_dir, "keystore.key");
	char *data = NULL;
	size_t len = 0;
	uint8_t fresh[SEAL_KEY_SIZE];
	int r;

	if (!path)
		return skr_error_set(err, -ENOMEM, "out of memory");
	r = read_file(path, 4096, &data, &len);
	if (r == -ENOENT) {
		/* First use (a state made before the key vault existed, or a fresh init). */
		if (RAND_bytes(fresh, sizeof(fresh)) != 1)
			return ossl_error_set(err, -EIO, "keystore.key");
		r = write_file_atomic(path, fresh, sizeof(fresh), 0600);
		*out = r == 0 ? secret_new_copy(fresh, sizeof(fresh)) : NULL;
		secure_erase(fresh, sizeof(fresh));
		if (r < 0)
			return skr_error_set(err, r, "cannot write %s: %s", path, strerror(-r));
		return *out ? 0 : skr_error_set(err, -ENOMEM, "out of memory");
	}
	if (r < 0)
		return skr_error_set(err, r, "cannot read %s: %s", path, strerror(-r));
	if (len != SEAL_KEY_SIZE) {
		secure_free(data, len);
		/* Never replaced: a new key would make every stored key unreadable. */
		return skr_error_set(err, -EINVAL,
		                     "%s is %zu bytes, expected %d; restore it from a backup (the "
		                     "stored keys are sealed with it)",
		                     path, len, SEAL_KEY_SIZE);
	}
	*out = secret_new_copy(data, len);
	secure_free(data, len);
	return *out ? 0 : skr_error_set(err, -ENOMEM, "out of memory");
}

int devcloud_keystore_open(const char *state_dir, struct devcloud_keystore **out,
                           struct skr_error *err)
{
	struct devcloud_keystore *ks = calloc(1, sizeof(*ks));
	int r;

	if (!ks)
		return skr_error_set(err, -ENOMEM, "out of memory");
	pthread_mutex_init(&ks->lock, NULL);
	ks->next_seq = 1;
	ks->dir = path_join(state_dir, "keys");
	if (!ks->dir) {
		r = skr_error_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	r = load_seal_key(state_dir, &ks->seal_key, err);
	if (r < 0)
		goto fail;
	r = mkdir_p(ks->dir, 0700);
	if (r < 0) {
		r = skr_error_set(err, r, "cannot create %s: %s", ks->dir, strerror(-r));
		goto fail;
	}
	r = load_all(ks, err);
	if (r < 0)
		goto fail;
	*out = ks;
	return 0;
fail:
	devcloud_keystore_free(ks);
	return r;
}

/* ---------------------------------------------------------------------------------------------
 * Lookup and import
 * ------------------------------------------------------------------------------------------- */

static const struct devcloud_kv_key *find_locked(struct devcloud_keystore *ks, const char *name,
                                                 const char *version)
{
	const struct devcloud_kv_key *best = NULL;

	for (size_t i = 0; i < ks->n; i++) {
		const struct devcloud_kv_key *k = ks->keys[i];

		/* Key Vault's names are case-insensitive; versions are lower-case hex. */
		if (strcasecmp(k->name, name) != 0)
			continue;
		if (version) {
			if (strcasecmp(k->version, version) == 0)
				return k;
		} else if (!best || k->seq > best->seq) {
			best = k;
		}
	}
	return best;
}

const struct devcloud_kv_key *devcloud_keystore_find(struct devcloud_keystore *ks, const char *name,
                                                     const char *version)
{
	const struct devcloud_kv_key *k;

	pthread_mutex_lock(&ks->lock);
	k = find_locked(ks, name, version);
	pthread_mutex_unlock(&ks->lock);
	return k;
}

size_t devcloud_keystore_count(struct devcloud_keystore *ks)
{
	size_t n;

	pthread_mutex_lock(&ks->lock);
	n = ks->n;
	pthread_mutex_unlock(&ks->lock);
	return n;
}

static bool same_policy(const struct devcloud_kv_import *a, const struct devcloud_kv_import *b)
{
	_cleanup_json_ json_object *ja = NULL, *jb = NULL;

	if (!a->has_policy || !b->has_policy)
		return false;
	/* Same document, whatever its spacing or member order. */
	if (json_parse(a->policy_json, a->policy_len, "policy", &ja, NULL) < 0 ||
	    json_parse(b->policy_json, b->policy_len, "policy", &jb, NULL) < 0)
		return false;
	return json_object_equal(ja, jb);
}

static int add_locked(struct devcloud_keystore *ks, const char *name,
                      struct devcloud_kv_import *imp, time_t now,
                      const struct devcloud_kv_key **out, struct skr_error *err)
{
	_cleanup_(key_freep) struct devcloud_kv_key *k = NULL;
	const struct devcloud_kv_key *latest = find_locked(ks, name, NULL);
	uint8_t id[DEVCLOUD_KV_VERSION_LEN / 2];
	int r;

	if (latest && latest->imp.immutable && (!imp->immutable || !same_policy(&latest->imp, imp)))
		return skr_error_set(err, -EPERM,
		                     "key %s has an immutable release policy; a new version must "
		                     "carry the same policy, again immutable",
		                     latest->name);
	k = calloc(1, sizeof(*k));
	if (!k)
		return skr_error_set(err, -ENOMEM, "out of memory");
	if (RAND_bytes(id, sizeof(id)) != 1)
		return ossl_error_set(err, -EIO, "key version");
	hex_encode(id, sizeof(id), k->version);
	/* Keep the spelling of the first version's name, as Key Vault does. */
	k->name = strdup(latest ? latest->name : name);
	if (!k->name)
		return skr_error_set(err, -ENOMEM, "out of memory");
	k->seq = ks->next_seq;
	k->created = k->updated = (int64_t)now;
	if (imp->has_policy) {
		r = skr_policy_parse(imp->policy_json, imp->policy_len, &k->policy, err);
		if (r < 0)
			return skr_error_prefix(err, "release_policy.data: ");
	}
	k->imp = *imp;
	r = write_sealed(ks, k, err);
	if (r < 0) {
		memset(&k->imp, 0, sizeof(k->imp)); /* still the caller's */
		return r;
	}
	r = append(ks, k);
	if (r < 0) {
		memset(&k->imp, 0, sizeof(k->imp));
		return skr_error_set(err, r, "out of memory");
	}
	memset(imp, 0, sizeof(*imp));
	*out = TAKE_PTR(k);
	return 0;
}

int devcloud_keystore_add(struct devcloud_keystore *ks, const char *name,
                          struct devcloud_kv_import *imp, time_t now,
                          const struct devcloud_kv_key **out, struct skr_error *err)
{
	int r;

	if (!devcloud_kv_name_valid(name))
		return skr_error_set(err, -EINVAL,
		                     "key name '%.60s' is invalid: 1-%d characters of 0-9, a-z, "
		                     "A-Z and '-'",
		                     name, DEVCLOUD_KV_NAME_MAX);
	pthread_mutex_lock(&ks->lock);
	r = add_locked(ks, name, imp, now, out, err);
	pthread_mutex_unlock(&ks->lock);
	return r;
}
