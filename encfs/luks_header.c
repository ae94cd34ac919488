/* SPDX-License-Identifier: MIT */
/*
 * The LUKS2 header allowlist. The image comes from untrusted storage and LUKS2 metadata is not
 * authenticated by the volume key: whoever can write the blob can rewrite the JSON so that a
 * segment or keyslot uses cipher_null and any key "opens" it, serving the attacker's plaintext
 * (CVE-2025-59054, CVE-2025-58356). libcryptsetup accepts such headers, so we read both binary
 * headers and their JSON ourselves, before libcryptsetup sees the image, and accept only the
 * shape generatefs (and the Go project's generatefs.sh) writes.
 *
 * On-disk format: "LUKS2 On-Disk Format Specification" (cryptsetup docs, v1.1.x) §2-§3 — a 4096-
 * byte binary header followed by the JSON area, twice (primary at 0, secondary at hdr_size),
 * big-endian integers, checksum = hash over hdr_size bytes with the checksum field zeroed.
 */
#include "luks_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "cleanup.h"
#include "fileio.h"
#include "json_util.h"
#include "ossl.h"

/* Binary header layout (spec §2.1). */
#define BIN_HDR_SIZE 4096
#define OFF_MAGIC 0
#define OFF_VERSION 6
#define OFF_HDR_SIZE 8
#define OFF_CSUM_ALG 72
#define CSUM_ALG_LEN 32
#define OFF_HDR_OFFSET 256
#define OFF_CSUM 448
#define CSUM_LEN 64
#define MAGIC_LEN 6

/* hdr_size is 16 KiB .. 4 MiB, a power of two (spec §2.1, "metadata area sizes"). */
#define HDR_SIZE_MIN (16u * 1024)
#define HDR_SIZE_MAX (4u * 1024 * 1024)

/* LUKS2_KEYSLOTS_MAX in libcryptsetup. */
#define KEYSLOTS_MAX 32

#define VOLUME_KEY_SIZE 64 /* aes-xts-plain64 with AES-256: 512 bits */
#define AF_STRIPES 4000    /* the only anti-forensic stripe count libcryptsetup writes */
#define LUKS_FLAG_NO_JOURNAL "no-journal"

/*
 * The key-derivation cost a header from storage may ask for. The header is untrusted: without a
 * bound it could pin the CPU for hours (pbkdf2 iterations up to 2^32) or get the sidecar killed
 * for memory (argon2 up to 4 GiB per filesystem, several opened in parallel) before any key is
 * tried. The bounds are above what cryptsetup's own benchmarked defaults produce (a ~2 s unlock:
 * a few million pbkdf2 iterations, argon2 at most 1 GiB and a handful of passes) and far above
 * generatefs and the Go generatefs.sh (pbkdf2, 1000 iterations).
 */
#define LUKS_PBKDF2_ITERATIONS_MAX 20000000
#define LUKS_ARGON2_TIME_MAX 64
#define LUKS_ARGON2_MEMORY_KIB_MAX (1024 * 1024)

static const uint8_t magic_primary[MAGIC_LEN] = {'L', 'U', 'K', 'S', 0xba, 0xbe};
static const uint8_t magic_secondary[MAGIC_LEN] = {'S', 'K', 'U', 'L', 0xba, 0xbe};

#define REFUSED "LUKS header refused: "
#define TAMPERED " (the image was tampered with or not made by generatefs)"

__attribute__((format(printf, 2, 3))) static int refuse(struct skr_error *err, const char *fmt, ...)
{
	char what[SKR_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return skr_error_set(err, -EBADMSG, REFUSED "%s" TAMPERED, what);
}

/* A value from the untrusted JSON, shortened and with anything unprintable replaced. */
struct shown {
	char s[72];
};

static struct shown show(const char *v)
{
	struct shown out;
	size_t i, n = 0;

	for (i = 0; v[i] && n < 60; i++) {
		unsigned char c = (unsigned char)v[i];

		out.s[n++] = c < 0x20 || c > 0x7e || c == '"' || c == '\\' ? '?' : (char)c;
	}
	if (v[i])
		memcpy(out.s + n, "...", 3), n += 3;
	out.s[n] = '\0';
	return out;
}

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static bool hdr_size_valid(uint64_t v)
{
	return v >= HDR_SIZE_MIN && v <= HDR_SIZE_MAX && (v & (v - 1)) == 0;
}

/* SHA-256 over the @hdr_size bytes at @hdr with the checksum field taken as zeros. */
static int header_checksum(const uint8_t *hdr, uint64_t hdr_size, uint8_t md[32],
                           struct skr_error *err)
{
	static const uint8_t zeros[CSUM_LEN];
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int md_len = 0;

	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, hdr, OFF_CSUM) != 1 ||
	    EVP_DigestUpdate(ctx, zeros, sizeof(zeros)) != 1 ||
	    EVP_DigestUpdate(ctx, hdr + OFF_CSUM + CSUM_LEN, hdr_size - OFF_CSUM - CSUM_LEN) != 1 ||
	    EVP_DigestFinal_ex(ctx, md, &md_len) != 1 || md_len != 32)
		return ossl_error_set(err, -EIO, "LUKS header checksum: SHA-256");
	return 0;
}

/*
 * One binary header at @offset: magic, version, size, position, checksum. On success *@json
 * points at its NUL-terminated JSON text inside @buf.
 */
static int check_binary_header(const uint8_t *buf, size_t len, uint64_t offset, bool primary,
                               uint64_t expected_size, uint64_t *hdr_size, const char **json,
                               size_t *json_len, struct skr_error *err)
{
	const char *which = primary ? "primary" : "secondary";
	const uint8_t *h = buf + offset;
	uint8_t md[32];
	uint64_t size;
	const char *alg;
	size_t area;
	int r;

	if (primary && (len < MAGIC_LEN || memcmp(h, magic_primary, MAGIC_LEN) != 0))
		return skr_error_set(
		        err, -EMEDIUMTYPE,
		        "not a LUKS2 image (no LUKS magic at offset 0): check azure_url "
		        "points at an image made by generatefs");
	if (len < offset + BIN_HDR_SIZE)
		return skr_error_set(
		        err, -EBADMSG,
		        "LUKS header refused: truncated image: the %s header needs %" PRIu64
		        " bytes but only %zu are there (incomplete upload or download?)",
		        which, offset + (primary ? BIN_HDR_SIZE : expected_size), len);
	if (memcmp(h, primary ? magic_primary : magic_secondary, MAGIC_LEN) != 0)
		return refuse(err, "no secondary header magic at offset %" PRIu64, offset);
	if (be16(h + OFF_VERSION) != 2)
		return refuse(err, "%s header version is %u, only LUKS2 is accepted", which,
		              be16(h + OFF_VERSION));
	size = be64(h + OFF_HDR_SIZE);
	if (!hdr_size_valid(size))
		return refuse(err,
		              "%s header hdr_size is %" PRIu64
		              ", not a power of two from 16 KiB to 4 MiB",
		              which, size);
	if (expected_size && size != expected_size)
		return refuse(err,
		              "secondary header hdr_size is %" PRIu64
		              " but the primary's is %" PRIu64,
		              size, expected_size);
	if (be64(h + OFF_HDR_OFFSET) != offset)
		return refuse(err, "%s header hdr_offset is %" PRIu64 ", expected %" PRIu64, which,
		              be64(h + OFF_HDR_OFFSET), offset);
	if (len - offset < size)
		return skr_error_set(
		        err, -EBADMSG,
		        "LUKS header refused: truncated image: the %s header needs %" PRIu64
		        " bytes but only %zu are there (incomplete upload or download?)",
		        which, offset + size, len);
	alg = (const char *)h + OFF_CSUM_ALG;
	if (!memchr(alg, '\0', CSUM_ALG_LEN) || strcmp(alg, "sha256") != 0)
		return refuse(err, "%s header checksum_alg is \"%s\", only sha256 is accepted",
		              which,
		              memchr(alg, '\0', CSUM_ALG_LEN) ? show(alg).s : "(unterminated)");
	r = header_checksum(h, size, md, err);
	if (r < 0)
		return r;
	/* libcryptsetup compares the hash's length; the rest of the field is zero when written. */
	if (memcmp(md, h + OFF_CSUM, sizeof(md)) != 0)
		return refuse(err, "%s header checksum does not match its contents", which);

	area = (size_t)size - BIN_HDR_SIZE;
	*json = (const char *)h + BIN_HDR_SIZE;
	*json_len = strnlen(*json, area);
	if (*json_len == area)
		return refuse(err, "%s header JSON area is not NUL-terminated", which);
	if (*json_len == 0)
		return refuse(err, "%s header JSON area is empty", which);
	*hdr_size = size;
	return 0;
}

/* ---- typed access to the JSON, every refusal naming the field ---- */

static json_object *member(json_object *o, const char *key)
{
	json_object *v = NULL;

	return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static int need(json_object *o, const char *where, const char *key, json_type type,
                const char *type_name, json_object **out, struct skr_error *err)
{
	json_object *v = member(o, key);

	if (!v)
		return refuse(err, "%s has no %s", where, key);
	if (!json_object_is_type(v, type))
		return refuse(err, "%s %s is not %s", where, key, type_name);
	*out = v;
	return 0;
}

static int need_object(json_object *o, const char *where, const char *key, json_object **out,
                       struct skr_error *err)
{
	return need(o, where, key, json_type_object, "an object", out, err);
}

static int need_string(json_object *o, const char *where, const char *key, const char **out,
                       struct skr_error *err)
{
	json_object *v = NULL;
	int r = need(o, where, key, json_type_string, "a string", &v, err);

	if (r < 0)
		return r;
	*out = json_object_get_string(v);
	return 0;
}

/* @allowed: NULL-terminated; @allowed_text: how the message lists them. */
static int need_string_in(json_object *o, const char *where, const char *key,
                          const char *const *allowed, const char *allowed_text, const char **out,
                          struct skr_error *err)
{
	const char *s;
	int r = need_string(o, where, key, &s, err);

	if (r < 0)
		return r;
	for (size_t i = 0; allowed[i]; i++)
		if (strcmp(s, allowed[i]) == 0) {
			if (out)
				*out = s;
			return 0;
		}
	return refuse(err, "%s %s is \"%s\", only %s is accepted", where, key, show(s).s,
	              allowed_text);
}

static int need_int(json_object *o, const char *where, const char *key, int64_t min, int64_t max,
                    int64_t *out, struct skr_error *err)
{
	json_object *v = NULL;
	int64_t n;
	int r = need(o, where, key, json_type_int, "an integer", &v, err);

	if (r < 0)
		return r;
	n = json_object_get_int64(v);
	if (n < min || n > max)
		return refuse(err, "%s %s is %" PRId64 ", outside %" PRId64 "..%" PRId64, where,
		              key, n, min, max);
	if (out)
		*out = n;
	return 0;
}

/* A number written as a decimal string, as LUKS2 does for 64-bit offsets and sizes. */
static bool parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s || (s[0] == '0' && s[1]))
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return true;
}

static int need_u64_string(json_object *o, const char *where, const char *key, uint64_t *out,
                           struct skr_error *err)
{
	const char *s;
	int r = need_string(o, where, key, &s, err);

	if (r < 0)
		return r;
	if (!parse_u64(s, out))
		return refuse(err, "%s %s is \"%s\", not a decimal number", where, key, show(s).s);
	return 0;
}

/* Every member of @o must be one of @allowed (NULL-terminated): an allowlist, not a denylist. */
static int only_fields(json_object *o, const char *where, const char *const *allowed,
                       struct skr_error *err)
{
	json_object_object_foreach(o, key, val)
	{
		bool known = false;

		(void)val;
		for (size_t i = 0; allowed[i] && !known; i++)
			known = strcmp(key, allowed[i]) == 0;
		if (!known)
			return refuse(err, "%s has an unexpected field \"%s\"", where, show(key).s);
	}
	return 0;
}

/* An absent or empty "flags" array: flags carry reencryption and activation state. */
static int no_flags(json_object *o, const char *where, struct skr_error *err)
{
	json_object *f = member(o, "flags");

	if (!f)
		return 0;
	if (!json_object_is_type(f, json_type_array))
		return refuse(err, "%s flags is not an array", where);
	if (json_object_array_length(f) != 0) {
		json_object *first = json_object_array_get_idx(f, 0);

		return refuse(err, "%s flags holds \"%s\", no flags are accepted", where,
		              json_object_is_type(first, json_type_string)
		                      ? show(json_object_get_string(first)).s
		                      : "(not a string)");
	}
	return 0;
}

/*
 * Persistent activation flags: only "no-journal", which the Go sidecar's `cryptsetup open
 * --integrity-no-journal --persistent` stores in images it opened read-write, and which means
 * nothing without dm-integrity. Any other (allow-discards, workqueue tuning) changes how the
 * mapping behaves and is refused.
 */
static int config_flags(json_object *config, struct skr_error *err)
{
	json_object *f = member(config, "flags");

	if (!f)
		return 0;
	if (!json_object_is_type(f, json_type_array))
		return refuse(err, "config flags is not an array");
	for (size_t i = 0; i < json_object_array_length(f); i++) {
		json_object *v = json_object_array_get_idx(f, i);

		if (!json_object_is_type(v, json_type_string))
			return refuse(err, "config flags holds a value that is not a string");
		if (strcmp(json_object_get_string(v), LUKS_FLAG_NO_JOURNAL) != 0)
			return refuse(err,
			              "config flags holds \"%s\", only \"" LUKS_FLAG_NO_JOURNAL
			              "\" is accepted",
			              show(json_object_get_string(v)).s);
	}
	return 0;
}

/* Keyslot and segment ids: "0" .. "31", no leading zeros. */
static int object_id(const char *key, unsigned max)
{
	uint64_t v;

	if (!parse_u64(key, &v) || v >= max)
		return -1;
	return (int)v;
}

/* ---- the sections of the metadata ---- */

static int check_config(json_object *config, uint64_t hdr_size, struct luks_header_info *info,
                        struct skr_error *err)
{
	static const char *const fields[] = {"json_size", "keyslots_size", "flags", "requirements",
	                                     NULL};
	uint64_t json_size;
	int r;

	/* Reencryption (online or offline) and any future mandatory feature show up here first. */
	if (member(config, "requirements"))
		return refuse(err,
		              "config requirements is present (reencryption in progress or "
		              "another mandatory feature), only images without requirements are "
		              "accepted");
	r = only_fields(config, "config", fields, err);
	if (r < 0)
		return r;
	r = config_flags(config, err);
	if (r < 0)
		return r;
	r = need_u64_string(config, "config", "json_size", &json_size, err);
	if (r < 0)
		return r;
	if (json_size != hdr_size - BIN_HDR_SIZE)
		return refuse(err,
		              "config json_size is %" PRIu64 " but the binary header's JSON area "
		              "is %" PRIu64 " bytes",
		              json_size, hdr_size - BIN_HDR_SIZE);
	r = need_u64_string(config, "config", "keyslots_size", &info->keyslots_size, err);
	if (r < 0)
		return r;
	if (info->keyslots_size % 4096 != 0 || info->keyslots_size > (UINT64_MAX >> 2))
		return refuse(err, "config keyslots_size %" PRIu64 " is not a multiple of 4096",
		              info->keyslots_size);
	return 0;
}

static int check_segment(json_object *segments, uint64_t image_size, struct luks_header_info *info,
                         struct skr_error *err)
{
	static const char *const fields[] = {"type",       "offset",      "size",  "iv_tweak",
	                                     "encryption", "sector_size", "flags", NULL};
	static const char *const crypt[] = {"crypt", NULL};
	static const char *const xts[] = {"aes-xts-plain64", NULL};
	static const char *const zero[] = {"0", NULL};
	json_object *seg = NULL;
	const char *size;
	int64_t sector_size;
	uint64_t keyslots_end;
	int r;

	if (json_object_object_length(segments) != 1 || !(seg = member(segments, "0")))
		return refuse(err,
		              "segments holds %d entries, exactly one segment \"0\" is accepted",
		              json_object_object_length(segments));
	if (!json_object_is_type(seg, json_type_object))
		return refuse(err, "segment 0 is not an object");
	r = need_string_in(seg, "segment 0", "type", crypt, "crypt", NULL, err);
	if (r < 0)
		return r;
	r = need_string_in(seg, "segment 0", "encryption", xts, "aes-xts-plain64", NULL, err);
	if (r < 0)
		return r;
	if (member(seg, "integrity"))
		return refuse(err, "segment 0 has integrity protection (dm-integrity), only plain "
		                   "aes-xts-plain64 segments are accepted");
	r = only_fields(seg, "segment 0", fields, err);
	if (r < 0)
		return r;
	r = no_flags(seg, "segment 0", err);
	if (r < 0)
		return r;
	r = need_int(seg, "segment 0", "sector_size", 0, INT32_MAX, &sector_size, err);
	if (r < 0)
		return r;
	if (sector_size != 512 && sector_size != 4096)
		return refuse(err,
		              "segment 0 sector_size is %" PRId64 ", only 512 or 4096 is accepted",
		              sector_size);
	info->sector_size = (uint32_t)sector_size;
	r = need_string_in(seg, "segment 0", "iv_tweak", zero, "\"0\"", NULL, err);
	if (r < 0)
		return r;

	r = need_u64_string(seg, "segment 0", "offset", &info->data_offset, err);
	if (r < 0)
		return r;
	keyslots_end = 2 * info->hdr_size + info->keyslots_size;
	if (info->data_offset < keyslots_end)
		return refuse(err,
		              "segment 0 offset %" PRIu64 " overlaps the headers and keyslots "
		              "(which end at %" PRIu64 ")",
		              info->data_offset, keyslots_end);
	if (info->data_offset % (uint64_t)sector_size != 0)
		return refuse(err,
		              "segment 0 offset %" PRIu64 " is not a multiple of its sector size",
		              info->data_offset);

	r = need_string(seg, "segment 0", "size", &size, err);
	if (r < 0)
		return r;
	if (strcmp(size, "dynamic") == 0)
		info->data_size = 0;
	else if (!parse_u64(size, &info->data_size) || info->data_size == 0 ||
	         info->data_size % (uint64_t)sector_size != 0 ||
	         info->data_size > UINT64_MAX - info->data_offset)
		return refuse(err,
		              "segment 0 size is \"%s\", expected \"dynamic\" or a positive "
		              "multiple of the sector size",
		              show(size).s);

	if (image_size) {
		uint64_t need = info->data_size ? info->data_size : (uint64_t)sector_size;
		uint64_t end = info->data_offset + need;

		if (info->data_offset > UINT64_MAX - need || end > image_size)
			return skr_error_set(err, -EBADMSG,
			                     REFUSED "truncated image: segment 0 needs %" PRIu64
			                             " bytes but the image has %" PRIu64
			                             " (incomplete upload or download?)",
			                     end, image_size);
	}
	return 0;
}

/* Digests: pbkdf2, bound to segment 0 only. Fills @bound with the keyslots they name. */
static int check_digests(json_object *digests, json_object *keyslots, bool bound[KEYSLOTS_MAX],
                         struct skr_error *err)
{
	static const char *const fields[] = {"type",       "keyslots", "segments", "hash",
	                                     "iterations", "salt",     "digest",   NULL};
	static const char *const pbkdf2[] = {"pbkdf2", NULL};
	static const char *const hashes[] = {"sha256", "sha512", NULL};

	if (json_object_object_length(digests) == 0)
		return refuse(err, "digests is empty, segment 0 has no digest");
	json_object_object_foreach(digests, id, d)
	{
		char where[96];
		json_object *segs = NULL, *slots = NULL, *v = NULL;
		const char *s;
		int r;

		snprintf(where, sizeof(where), "digest %.40s", show(id).s);
		if (object_id(id, KEYSLOTS_MAX) < 0)
			return refuse(err, "%s: digest ids are \"0\"..\"31\"", where);
		if (!json_object_is_type(d, json_type_object))
			return refuse(err, "%s is not an object", where);
		r = need_string_in(d, where, "type", pbkdf2, "pbkdf2", NULL, err);
		if (r < 0)
			return r;
		r = only_fields(d, where, fields, err);
		if (r < 0)
			return r;
		r = need_string_in(d, where, "hash", hashes, "sha256 or sha512", NULL, err);
		if (r < 0)
			return r;
		r = need_int(d, where, "iterations", 1, LUKS_PBKDF2_ITERATIONS_MAX, NULL, err);
		if (r < 0)
			return r;
		r = need_string(d, where, "salt", &s, err);
		if (r >= 0)
			r = need_string(d, where, "digest", &s, err);
		if (r < 0)
			return r;

		r = need(d, where, "segments", json_type_array, "an array", &segs, err);
		if (r < 0)
			return r;
		v = json_object_array_length(segs) == 1 ? json_object_array_get_idx(segs, 0) : NULL;
		if (!v || !json_object_is_type(v, json_type_string) ||
		    strcmp(json_object_get_string(v), "0") != 0)
			return refuse(err, "%s segments must be exactly [\"0\"]", where);

		r = need(d, where, "keyslots", json_type_array, "an array", &slots, err);
		if (r < 0)
			return r;
		if (json_object_array_length(slots) == 0)
			return refuse(err, "%s keyslots is empty", where);
		for (size_t i = 0; i < json_object_array_length(slots); i++) {
			json_object *k = json_object_array_get_idx(slots, i);
			const char *ks = json_object_is_type(k, json_type_string)
			                         ? json_object_get_string(k)
			                         : NULL;
			int n = ks ? object_id(ks, KEYSLOTS_MAX) : -1;

			if (n < 0 || !member(keyslots, ks))
				return refuse(err,
				              "%s keyslots names \"%s\", which is not a keyslot",
				              where, ks ? show(ks).s : "(not a string)");
			bound[n] = true;
		}
	}
	return 0;
}

static int check_kdf(json_object *kdf, const char *where, struct skr_error *err)
{
	static const char *const pbkdf2_fields[] = {"type", "hash", "iterations", "salt", NULL};
	static const char *const argon2_fields[] = {"type", "time", "memory", "cpus", "salt", NULL};
	static const char *const kdfs[] = {"pbkdf2", "argon2i", "argon2id", NULL};
	static const char *const hashes[] = {"sha256", "sha512", NULL};
	const char *type, *salt;
	int r;

	r = need_string_in(kdf, where, "type", kdfs, "pbkdf2, argon2i or argon2id", &type, err);
	if (r < 0)
		return r;
	if (strcmp(type, "pbkdf2") == 0) {
		r = only_fields(kdf, where, pbkdf2_fields, err);
		if (r >= 0)
			r = need_string_in(kdf, where, "hash", hashes, "sha256 or sha512", NULL,
			                   err);
		if (r >= 0)
			r = need_int(kdf, where, "iterations", 1, LUKS_PBKDF2_ITERATIONS_MAX, NULL,
			             err);
	} else {
		r = only_fields(kdf, where, argon2_fields, err);
		if (r >= 0)
			r = need_int(kdf, where, "time", 1, LUKS_ARGON2_TIME_MAX, NULL, err);
		if (r >= 0)
			r = need_int(kdf, where, "memory", 32, LUKS_ARGON2_MEMORY_KIB_MAX, NULL,
			             err);
		if (r >= 0)
			r = need_int(kdf, where, "cpus", 1, 32, NULL, err);
	}
	if (r >= 0)
		r = need_string(kdf, where, "salt", &salt, err);
	return r;
}

static int check_keyslot(const char *id, json_object *ks, const struct luks_header_info *info,
                         struct skr_error *err)
{
	static const char *const fields[] = {"type", "key_size", "af", "area",
	                                     "kdf",  "priority", NULL};
	static const char *const area_fields[] = {"type",       "offset",   "size",
	                                          "encryption", "key_size", NULL};
	static const char *const af_fields[] = {"type", "stripes", "hash", NULL};
	static const char *const luks2[] = {"luks2", NULL};
	static const char *const raw[] = {"raw", NULL};
	static const char *const xts[] = {"aes-xts-plain64", NULL};
	static const char *const luks1[] = {"luks1", NULL};
	static const char *const sha256[] = {"sha256", NULL};
	char where[64], sub[96];
	json_object *area = NULL, *af = NULL, *kdf = NULL;
	uint64_t off, size, start = 2 * info->hdr_size, end = start + info->keyslots_size;
	int64_t key_size;
	int r;

	snprintf(where, sizeof(where), "keyslot %.20s", id);
	if (!json_object_is_type(ks, json_type_object))
		return refuse(err, "%s is not an object", where);
	r = need_string_in(ks, where, "type", luks2, "luks2", NULL, err);
	if (r < 0)
		return r;
	r = only_fields(ks, where, fields, err);
	if (r < 0)
		return r;
	r = need_int(ks, where, "key_size", 0, INT32_MAX, &key_size, err);
	if (r < 0)
		return r;
	if (key_size != VOLUME_KEY_SIZE)
		return refuse(err,
		              "%s key_size is %" PRId64 " bytes, only %d (a 512-bit "
		              "aes-xts-plain64 key) is accepted",
		              where, key_size, VOLUME_KEY_SIZE);
	if (member(ks, "priority")) {
		r = need_int(ks, where, "priority", 0, 2, NULL, err);
		if (r < 0)
			return r;
	}

	snprintf(sub, sizeof(sub), "%s area", where);
	r = need_object(ks, where, "area", &area, err);
	if (r >= 0)
		r = need_string_in(area, sub, "type", raw, "raw", NULL, err);
	if (r >= 0)
		r = need_string_in(area, sub, "encryption", xts, "aes-xts-plain64", NULL, err);
	if (r >= 0)
		r = only_fields(area, sub, area_fields, err);
	if (r >= 0)
		r = need_int(area, sub, "key_size", 0, INT32_MAX, &key_size, err);
	if (r < 0)
		return r;
	if (key_size != VOLUME_KEY_SIZE)
		return refuse(err, "%s key_size is %" PRId64 " bytes, only %d is accepted", sub,
		              key_size, VOLUME_KEY_SIZE);
	r = need_u64_string(area, sub, "offset", &off, err);
	if (r >= 0)
		r = need_u64_string(area, sub, "size", &size, err);
	if (r < 0)
		return r;
	if (size == 0 || off < start || off > end || size > end - off)
		return refuse(err,
		              "%s [%" PRIu64 ", +%" PRIu64 ") lies outside the keyslots area "
		              "[%" PRIu64 ", %" PRIu64 ")",
		              sub, off, size, start, end);

	snprintf(sub, sizeof(sub), "%s af", where);
	r = need_object(ks, where, "af", &af, err);
	if (r >= 0)
		r = need_string_in(af, sub, "type", luks1, "luks1", NULL, err);
	if (r >= 0)
		r = need_string_in(af, sub, "hash", sha256, "sha256", NULL, err);
	if (r >= 0)
		r = only_fields(af, sub, af_fields, err);
	if (r >= 0)
		r = need_int(af, sub, "stripes", AF_STRIPES, AF_STRIPES, NULL, err);
	if (r < 0)
		return r;

	snprintf(sub, sizeof(sub), "%s kdf", where);
	r = need_object(ks, where, "kdf", &kdf, err);
	if (r < 0)
		return r;
	return check_kdf(kdf, sub, err);
}

static int check_metadata(json_object *root, const char *text, uint64_t image_size,
                          struct luks_header_info *info, struct skr_error *err)
{
	static const char *const fields[] = {"keyslots", "tokens", "segments",
	                                     "digests",  "config", NULL};
	json_object *keyslots = NULL, *tokens = NULL, *segments = NULL, *digests = NULL,
	            *config = NULL;
	bool bound[KEYSLOTS_MAX] = {false};
	int r;

	if (!json_object_is_type(root, json_type_object))
		return refuse(err, "the JSON metadata is not an object");
	r = only_fields(root, "the JSON metadata", fields, err);
	if (r >= 0)
		r = need_object(root, "the JSON metadata", "config", &config, err);
	if (r >= 0)
		r = need_object(root, "the JSON metadata", "tokens", &tokens, err);
	if (r >= 0)
		r = need_object(root, "the JSON metadata", "segments", &segments, err);
	if (r >= 0)
		r = need_object(root, "the JSON metadata", "digests", &digests, err);
	if (r >= 0)
		r = need_object(root, "the JSON metadata", "keyslots", &keyslots, err);
	if (r >= 0)
		r = check_config(config, info->hdr_size, info, err);
	if (r < 0)
		return r;

	/* Tokens make libcryptsetup run plugins or fetch keys from elsewhere: none are expected. */
	if (json_object_object_length(tokens) != 0) {
		json_object_object_foreach(tokens, id, tok)
		{
			json_object *type = member(tok, "type");

			return refuse(err,
			              "tokens holds token %s (type \"%s\"), no tokens are accepted",
			              show(id).s,
			              type && json_object_is_type(type, json_type_string)
			                      ? show(json_object_get_string(type)).s
			                      : "?");
		}
	}

	r = check_segment(segments, image_size, info, err);
	if (r < 0)
		return r;

	if (json_object_object_length(keyslots) == 0)
		return refuse(err, "keyslots is empty, no key could open the image");
	r = check_digests(digests, keyslots, bound, err);
	if (r < 0)
		return r;
	info->keyslots = 0;
	json_object_object_foreach(keyslots, id, ks)
	{
		int n = object_id(id, KEYSLOTS_MAX);

		if (n < 0)
			return refuse(err, "keyslot \"%s\": keyslot ids are \"0\"..\"31\"",
			              show(id).s);
		r = check_keyslot(id, ks, info, err);
		if (r < 0)
			return r;
		if (!bound[n])
			return refuse(err, "keyslot %s is bound to no digest of segment 0", id);
		info->keyslots++;
	}

	/* The catch-all for the attack itself, wherever a future field might carry it. */
	if (strcasestr(text, "cipher_null"))
		return refuse(err, "the JSON metadata contains \"cipher_null\"");
	return 0;
}

int luks_header_check(const uint8_t *buf, size_t len, uint64_t image_size,
                      struct luks_header_info *info, struct skr_error *err)
{
	_cleanup_json_ json_object *root = NULL;
	struct luks_header_info facts = {0};
	const char *json1, *json2;
	size_t len1, len2;
	uint64_t hdr_size, hdr_size2;
	struct skr_error jerr = {0};
	int r;

	r = check_binary_header(buf, len, 0, true, 0, &hdr_size, &json1, &len1, err);
	if (r < 0)
		return r;
	r = check_binary_header(buf, len, hdr_size, false, hdr_size, &hdr_size2, &json2, &len2,
	                        err);
	if (r < 0)
		return r;
	/* libcryptsetup silently prefers one copy (the higher seqid) and "repairs" the other: a
	 * difference is either damage or an attempt to show us one header and it another. */
	if (len1 != len2 || memcmp(json1, json2, len1) != 0)
		return refuse(err, "the primary and secondary JSON metadata differ");

	if (json_parse(json1, len1, "the JSON metadata", &root, &jerr) < 0)
		return refuse(err, "%s", jerr.msg);
	facts.hdr_size = hdr_size;
	r = check_metadata(root, json1, image_size, &facts, err);
	if (r < 0)
		return r;
	if (info)
		*info = facts;
	return 0;
}

int luks_header_check_buffer(const uint8_t *buf, size_t len, struct skr_error *err)
{
	return luks_header_check(buf, len, 0, NULL, err);
}

static int image_size_of(int fd, uint64_t *out)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode))
		return ioctl(fd, BLKGETSIZE64, out) < 0 ? -errno : 0;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	*out = (uint64_t)st.st_size;
	return 0;
}

int luks_header_check_path(const char *path, struct luks_header_info *info, struct skr_error *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ uint8_t *buf = NULL;
	uint8_t first[BIN_HDR_SIZE];
	uint64_t image_size, hdr_size;
	ssize_t got;
	size_t want;
	int r;

	if (fd < 0)
		return skr_error_set(err, -errno, "LUKS header: cannot open %s: %s", path,
		                     skr_strerror(errno));
	r = image_size_of(fd, &image_size);
	if (r < 0)
		return skr_error_set(err, r, "LUKS header: cannot size %s: %s", path,
		                     r == -EINVAL ? "not a regular file or block device"
		                                  : skr_strerror(r));
	got = pread_full(fd, first, sizeof(first), 0);
	if (got < 0)
		return skr_error_set(err, (int)got, "LUKS header: reading %s: %s", path,
		                     skr_strerror((int)got));
	if ((size_t)got < OFF_HDR_SIZE + 8)
		return luks_header_check(first, (size_t)got, image_size, info, err);

	/* Both headers: 2 × hdr_size, the size read from the primary (bounded before use). */
	hdr_size = be64(first + OFF_HDR_SIZE);
	if (!hdr_size_valid(hdr_size))
		return luks_header_check(first, (size_t)got, image_size, info, err);
	want = (size_t)(2 * hdr_size);
	buf = malloc(want);
	if (!buf)
		return skr_error_set(err, -ENOMEM, "LUKS header: out of memory");
	got = pread_full(fd, buf, want, 0);
	if (got < 0)
		return skr_error_set(err, (int)got, "LUKS header: reading %s: %s", path,
		                     skr_strerror((int)got));
	return luks_header_check(buf, (size_t)got, image_size, info, err);
}

int luks_header_check_file(const char *path, struct skr_error *err)
{
	return luks_header_check_path(path, NULL, err);
}
