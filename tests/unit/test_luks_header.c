/* SPDX-License-Identifier: MIT */
/*
 * The LUKS2 header allowlist (encfs.h "LUKS2") and the part of luks_open() that runs without
 * device-mapper: images made by the real cryptsetup (good ones, and bad ones cryptsetup can make
 * rootless: another keyslot cipher, a 256-bit key, a token, a reencryption in progress, LUKS1),
 * and headers tampered with the way an attacker would (JSON edited, checksums recomputed), each
 * refused with the field named — and refused before any activation, where libcryptsetup alone
 * would accept the key.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <json-c/json.h>
#include <libcryptsetup.h>
#include <openssl/evp.h>

#include "cleanup.h"
#include "encfs.h"
#include "luks_internal.h"
#include "secret.h"
#include "skr.h"
#include "test_fs.h"
#include "test_proc.h"

#define PASSPHRASE "correct horse battery staple, 32"
#define WRONG_PASSPHRASE "wrong horse battery staple, 32 b"
#define IMAGE_SIZE "20M" /* the default 16 MiB header area plus some data */

static char tmpdir[] = "/tmp/test-luks-header-XXXXXX";
static char keyfile[256];

/* The full path of @name (test_proc_tool()); the test fails when it is not installed. */
static const char *tool(const char *name)
{
	const char *path = test_proc_tool(name);

	if (!path)
		fail_msg("%s is not installed", name);
	return path;
}

static char *image_path(const char *name)
{
	char *p = NULL;

	assert_true(asprintf(&p, "%s/%s", tmpdir, name) > 0);
	return p;
}

/* Run a command (argv[0] a tool name), failing the test with its stderr if it fails. */
static void run(const char **argv)
{
	struct test_proc_result res;
	char bin[256];

	snprintf(bin, sizeof(bin), "%s", tool(argv[0]));
	argv[0] = bin;
	assert_int_equal(test_proc_run(argv, tmpdir, &res), 0);
	if (res.status != 0)
		fail_msg("%s failed (%d): %s", bin, res.status, res.err);
	test_proc_result_clear(&res);
}

static void make_file(const char *name)
{
	_cleanup_free_ char *p = image_path(name);

	run((const char *[]){"truncate", "-s", IMAGE_SIZE, p, NULL});
}

/* luksFormat as generatefs does it (4096-byte sectors, pbkdf2), with fast KDF settings. */
static void format(const char *name, const char *const *extra)
{
	_cleanup_free_ char *p = image_path(name);
	const char *argv[40] = {"cryptsetup", "luksFormat", "-q",    "--type",
	                        "luks2",      "--key-file", keyfile, NULL};
	size_t n = 7;

	make_file(name);
	for (size_t i = 0; extra && extra[i]; i++)
		argv[n++] = extra[i];
	argv[n++] = p;
	argv[n] = NULL;
	run(argv);
}

static void format_default(const char *name, const char *sector_size, const char *key_size)
{
	const char *extra[] = {"--cipher",
	                       "aes-xts-plain64",
	                       "--key-size",
	                       key_size,
	                       "--sector-size",
	                       sector_size,
	                       "--pbkdf",
	                       "pbkdf2",
	                       "--pbkdf-force-iterations",
	                       "1000",
	                       NULL};
	format(name, extra);
}

static void copy_image(const char *from, const char *to)
{
	_cleanup_free_ char *a = image_path(from), *b = image_path(to);

	run((const char *[]){"cp", "--sparse=always", a, b, NULL});
}

/* ---- tampering with a header the way an attacker with write access to the blob would ---- */

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void rechecksum(uint8_t *hdr, uint64_t hdr_size)
{
	uint8_t md[32];
	unsigned int len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	memset(hdr + 448, 0, 64);
	assert_non_null(ctx);
	assert_int_equal(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL), 1);
	assert_int_equal(EVP_DigestUpdate(ctx, hdr, hdr_size), 1);
	assert_int_equal(EVP_DigestFinal_ex(ctx, md, &len), 1);
	EVP_MD_CTX_free(ctx);
	memcpy(hdr + 448, md, sizeof(md));
}

enum which { PRIMARY = 1, SECONDARY = 2, BOTH = 3 };

typedef void (*mutate_fn)(json_object *root);

/* Copy @from to @to, then rewrite the JSON of the chosen header(s) through @mutate and
 * recompute their checksums: a header every check except the allowlist accepts. */
static void tamper(const char *from, const char *to, mutate_fn mutate, enum which which)
{
	_cleanup_free_ char *p = image_path(to);
	_cleanup_close_ int fd = -1;
	uint8_t first[4096];
	uint64_t hdr_size;

	copy_image(from, to);
	fd = open(p, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, first, sizeof(first), 0), sizeof(first));
	hdr_size = be64(first + 8);
	for (int h = 0; h < 2; h++) {
		_cleanup_free_ uint8_t *hdr = NULL;
		json_object *root;
		const char *text;
		uint64_t off = h ? hdr_size : 0;

		if (!(which & (h ? SECONDARY : PRIMARY)))
			continue;
		hdr = malloc(hdr_size);
		assert_non_null(hdr);
		assert_int_equal(pread(fd, hdr, hdr_size, (off_t)off), (ssize_t)hdr_size);
		root = json_tokener_parse((const char *)hdr + 4096);
		assert_non_null(root);
		mutate(root);
		text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN |
		                                                    JSON_C_TO_STRING_NOSLASHESCAPE);
		assert_true(strlen(text) < hdr_size - 4096);
		memset(hdr + 4096, 0, hdr_size - 4096);
		memcpy(hdr + 4096, text, strlen(text));
		json_object_put(root);
		rechecksum(hdr, hdr_size);
		assert_int_equal(pwrite(fd, hdr, hdr_size, (off_t)off), (ssize_t)hdr_size);
	}
}

/* Overwrite @len bytes at @off of image @name (no checksum fix: plain corruption). */
static void poke(const char *name, uint64_t off, const void *bytes, size_t len)
{
	_cleanup_free_ char *p = image_path(name);
	_cleanup_close_ int fd = open(p, O_RDWR | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, bytes, len, (off_t)off), (ssize_t)len);
}

static json_object *at(json_object *o, const char *a, const char *b, const char *c)
{
	const char *keys[] = {a, b, c};

	for (size_t i = 0; i < 3 && keys[i]; i++) {
		json_object *next = NULL;

		assert_true(json_object_object_get_ex(o, keys[i], &next));
		o = next;
	}
	return o;
}

static void set_str(json_object *o, const char *key, const char *value)
{
	json_object_object_add(o, key, json_object_new_string(value));
}

static void m_segment_cipher_null(json_object *r)
{
	set_str(at(r, "segments", "0", NULL), "encryption", "cipher_null-ecb");
}
static void m_keyslot_cipher_null(json_object *r)
{
	set_str(at(r, "keyslots", "0", "area"), "encryption", "cipher_null-ecb");
}
static void m_integrity(json_object *r)
{
	json_object *i = json_object_new_object();

	set_str(i, "type", "hmac(sha256)");
	set_str(i, "journal_encryption", "none");
	set_str(i, "journal_integrity", "none");
	json_object_object_add(at(r, "segments", "0", NULL), "integrity", i);
}
static void m_two_segments(json_object *r)
{
	json_object *copy = NULL;

	assert_int_equal(json_object_deep_copy(at(r, "segments", "0", NULL), &copy, NULL), 0);
	json_object_object_add(at(r, "segments", NULL, NULL), "1", copy);
}
static void m_sector_1024(json_object *r)
{
	json_object_object_add(at(r, "segments", "0", NULL), "sector_size",
	                       json_object_new_int(1024));
}
static void m_iv_tweak(json_object *r)
{
	set_str(at(r, "segments", "0", NULL), "iv_tweak", "7");
}
static void m_segment_flags(json_object *r)
{
	json_object *f = json_object_new_array();

	json_object_array_add(f, json_object_new_string("backup-previous"));
	json_object_object_add(at(r, "segments", "0", NULL), "flags", f);
}
/* What the Go sidecar's `open --integrity-no-journal --persistent` leaves in the header. */
static void m_config_no_journal(json_object *r)
{
	json_object *f = json_object_new_array();

	json_object_array_add(f, json_object_new_string("no-journal"));
	json_object_object_add(at(r, "config", NULL, NULL), "flags", f);
}
static void m_config_discards(json_object *r)
{
	json_object *f = json_object_new_array();

	json_object_array_add(f, json_object_new_string("no-journal"));
	json_object_array_add(f, json_object_new_string("allow-discards"));
	json_object_object_add(at(r, "config", NULL, NULL), "flags", f);
}
static void m_segment_overlaps(json_object *r)
{
	set_str(at(r, "segments", "0", NULL), "offset", "16384");
}
static void m_digest_type(json_object *r)
{
	set_str(at(r, "digests", "0", NULL), "type", "argon2id");
}
static void m_digest_segments(json_object *r)
{
	json_object *a = json_object_new_array();

	json_object_array_add(a, json_object_new_string("0"));
	json_object_array_add(a, json_object_new_string("1"));
	json_object_object_add(at(r, "digests", "0", NULL), "segments", a);
}
static void m_unbound_keyslot(json_object *r)
{
	json_object *copy = NULL;

	assert_int_equal(json_object_deep_copy(at(r, "keyslots", "0", NULL), &copy, NULL), 0);
	json_object_object_add(at(r, "keyslots", NULL, NULL), "1", copy);
}
static void m_kdf_type(json_object *r)
{
	set_str(at(r, "keyslots", "0", "kdf"), "type", "scrypt");
}
static void m_af_hash(json_object *r)
{
	set_str(at(r, "keyslots", "0", "af"), "hash", "sha1");
}
static void m_keyslot_type(json_object *r)
{
	set_str(at(r, "keyslots", "0", NULL), "type", "reencrypt");
}
static void m_keyslot_area_outside(json_object *r)
{
	set_str(at(r, "keyslots", "0", "area"), "offset", "16777216");
}
static void m_unknown_field(json_object *r)
{
	json_object_object_add(r, "extensions", json_object_new_object());
}
static void m_requirements(json_object *r)
{
	json_object *req = json_object_new_object(), *m = json_object_new_array();

	json_object_array_add(m, json_object_new_string("online-reencrypt-v2"));
	json_object_object_add(req, "mandatory", m);
	json_object_object_add(at(r, "config", NULL, NULL), "requirements", req);
}
static void m_json_size(json_object *r)
{
	set_str(at(r, "config", NULL, NULL), "json_size", "4096");
}
static void m_salt_cipher_null(json_object *r)
{
	/* Structurally fine: only the catch-all for the substring sees it. */
	set_str(at(r, "keyslots", "0", "kdf"), "salt", "cipher_null");
}
static void m_iterations(json_object *r)
{
	json_object_object_add(at(r, "keyslots", "0", "kdf"), "iterations",
	                       json_object_new_int(1001));
}
/* A key-derivation cost that would pin the CPU for hours before any key is tried. */
static void m_kdf_cost(json_object *r)
{
	json_object_object_add(at(r, "keyslots", "0", "kdf"), "iterations",
	                       json_object_new_int64(4000000000));
}
static void m_digest_cost(json_object *r)
{
	json_object_object_add(at(r, "digests", "0", NULL), "iterations",
	                       json_object_new_int64(3000000000));
}

/* ---- the table ---- */

struct header_case {
	const char *name;   /* image file (made in setup, or by tamper() from "good4096.img") */
	mutate_fn mutate;   /* NULL: the file as made */
	enum which which;   /* headers tamper() rewrites */
	int code;           /* expected result */
	const char *reason; /* substring of the reason */
};

static const struct header_case cases[] = {
        {"good4096.img", NULL, 0, 0, NULL},
        {"good512.img", NULL, 0, 0, NULL},
        {"argon2id.img", NULL, 0, 0, NULL},
        /* made by cryptsetup */
        {"keyslot_cipher.img", NULL, 0, -EBADMSG,
         "keyslot 1 area encryption is \"aes-cbc-essiv:sha256\", only aes-xts-plain64 is "
         "accepted"},
        {"key256.img", NULL, 0, -EBADMSG, "keyslot 0 key_size is 32 bytes, only 64"},
        {"token.img", NULL, 0, -EBADMSG,
         "tokens holds token 0 (type \"luks2-keyring\"), no tokens are accepted"},
        {"reencrypt.img", NULL, 0, -EBADMSG, "config requirements is present (reencryption"},
        {"luks1.img", NULL, 0, -EBADMSG, "primary header version is 1, only LUKS2"},
        {"ext4.img", NULL, 0, -EMEDIUMTYPE,
         "not a LUKS2 image (no LUKS magic at offset 0): check azure_url points at an image made "
         "by generatefs"},
        {"zeros.img", NULL, 0, -EMEDIUMTYPE, "not a LUKS2 image"},
        /* tampered: the malleable-header attack and its neighbours */
        {"t_segment_cipher_null.img", m_segment_cipher_null, BOTH, -EBADMSG,
         "LUKS header refused: segment 0 encryption is \"cipher_null-ecb\", only aes-xts-plain64 "
         "is accepted (the image was tampered with or not made by generatefs)"},
        {"t_keyslot_cipher_null.img", m_keyslot_cipher_null, BOTH, -EBADMSG,
         "keyslot 0 area encryption is \"cipher_null-ecb\""},
        {"t_integrity.img", m_integrity, BOTH, -EBADMSG, "segment 0 has integrity protection"},
        {"t_two_segments.img", m_two_segments, BOTH, -EBADMSG,
         "segments holds 2 entries, exactly one"},
        {"t_sector_1024.img", m_sector_1024, BOTH, -EBADMSG,
         "segment 0 sector_size is 1024, only 512 or 4096"},
        {"t_iv_tweak.img", m_iv_tweak, BOTH, -EBADMSG, "segment 0 iv_tweak is \"7\""},
        {"t_segment_flags.img", m_segment_flags, BOTH, -EBADMSG,
         "segment 0 flags holds \"backup-previous\""},
        {"t_config_no_journal.img", m_config_no_journal, BOTH, 0, NULL},
        {"t_config_discards.img", m_config_discards, BOTH, -EBADMSG,
         "config flags holds \"allow-discards\", only \"no-journal\" is accepted"},
        {"t_segment_overlaps.img", m_segment_overlaps, BOTH, -EBADMSG,
         "segment 0 offset 16384 overlaps the headers and keyslots"},
        {"t_digest_type.img", m_digest_type, BOTH, -EBADMSG,
         "digest 0 type is \"argon2id\", only pbkdf2"},
        {"t_digest_segments.img", m_digest_segments, BOTH, -EBADMSG,
         "digest 0 segments must be exactly [\"0\"]"},
        {"t_unbound_keyslot.img", m_unbound_keyslot, BOTH, -EBADMSG,
         "keyslot 1 is bound to no digest"},
        {"t_kdf_type.img", m_kdf_type, BOTH, -EBADMSG,
         "keyslot 0 kdf type is \"scrypt\", only pbkdf2, argon2i or argon2id"},
        {"t_af_hash.img", m_af_hash, BOTH, -EBADMSG, "keyslot 0 af hash is \"sha1\""},
        {"t_keyslot_type.img", m_keyslot_type, BOTH, -EBADMSG,
         "keyslot 0 type is \"reencrypt\", only luks2"},
        {"t_keyslot_area.img", m_keyslot_area_outside, BOTH, -EBADMSG,
         "keyslot 0 area [16777216, +258048) lies outside the keyslots area"},
        {"t_unknown_field.img", m_unknown_field, BOTH, -EBADMSG,
         "the JSON metadata has an unexpected field \"extensions\""},
        {"t_requirements.img", m_requirements, BOTH, -EBADMSG, "config requirements is present"},
        {"t_json_size.img", m_json_size, BOTH, -EBADMSG, "config json_size is 4096"},
        {"t_salt_cipher_null.img", m_salt_cipher_null, BOTH, -EBADMSG,
         "the JSON metadata contains \"cipher_null\""},
        {"t_kdf_cost.img", m_kdf_cost, BOTH, -EBADMSG,
         "iterations is 4000000000, outside 1..20000000"},
        {"t_digest_cost.img", m_digest_cost, BOTH, -EBADMSG,
         "iterations is 3000000000, outside 1..20000000"},
        /* the two copies */
        {"t_secondary_differs.img", m_iterations, SECONDARY, -EBADMSG,
         "the primary and secondary JSON metadata differ"},
        {"t_primary_differs.img", m_segment_cipher_null, PRIMARY, -EBADMSG,
         "the primary and secondary JSON metadata differ"},
};

/* ---- fixtures ---- */

static int group_setup(void **state)
{
	_cleanup_close_ int fd = -1;
	static const char *const argon2id[] = {"--cipher",
	                                       "aes-xts-plain64",
	                                       "--key-size",
	                                       "512",
	                                       "--sector-size",
	                                       "4096",
	                                       "--pbkdf",
	                                       "argon2id",
	                                       "--pbkdf-force-iterations",
	                                       "4",
	                                       "--pbkdf-memory",
	                                       "32",
	                                       "--pbkdf-parallel",
	                                       "1",
	                                       NULL};

	(void)state;
	if (!mkdtemp(tmpdir))
		return -1;
	test_fs_remove_at_exit(tmpdir);
	snprintf(keyfile, sizeof(keyfile), "%s/key", tmpdir);
	fd = open(keyfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, PASSPHRASE, strlen(PASSPHRASE)) != (ssize_t)strlen(PASSPHRASE))
		return -1;

	format_default("good4096.img", "4096", "512");
	format_default("good512.img", "512", "512");
	format("argon2id.img", argon2id);
	format_default("key256.img", "4096", "256");

	/* Another keyslot whose area uses a different cipher. */
	copy_image("good4096.img", "keyslot_cipher.img");
	{
		_cleanup_free_ char *p = image_path("keyslot_cipher.img");

		run((const char *[]){"cryptsetup", "luksAddKey", "-q", "--key-file", keyfile,
		                     "--new-keyfile", keyfile, "--keyslot-cipher",
		                     "aes-cbc-essiv:sha256", "--keyslot-key-size", "256", "--pbkdf",
		                     "pbkdf2", "--pbkdf-force-iterations", "1000", p, NULL});
	}
	/* A token (the keyring type needs no plugin). */
	copy_image("good4096.img", "token.img");
	{
		_cleanup_free_ char *p = image_path("token.img"), *j = image_path("token.json");
		FILE *f = fopen(j, "we");

		if (!f)
			return -1;
		fputs("{\"type\":\"luks2-keyring\",\"keyslots\":[\"0\"],\"key_description\":\"k\"}",
		      f);
		fclose(f);
		run((const char *[]){"cryptsetup", "token", "import", "--json-file", j, p, NULL});
	}
	/* A reencryption initialised but not run (offline, rootless). */
	copy_image("good4096.img", "reencrypt.img");
	{
		_cleanup_free_ char *p = image_path("reencrypt.img");

		run((const char *[]){"cryptsetup", "reencrypt", "--init-only", "-q", "--key-file",
		                     keyfile, "--pbkdf", "pbkdf2", "--pbkdf-force-iterations",
		                     "1000", p, NULL});
	}
	/* LUKS1: the same magic, another format. */
	{
		_cleanup_free_ char *p = image_path("luks1.img");

		make_file("luks1.img");
		run((const char *[]){"cryptsetup", "luksFormat", "-q", "--type", "luks1",
		                     "--key-file", keyfile, "--pbkdf-force-iterations", "1000", p,
		                     NULL});
	}
	/* Not LUKS: ext4, and nothing at all. */
	{
		_cleanup_free_ char *p = image_path("ext4.img");

		make_file("ext4.img");
		run((const char *[]){"mkfs.ext4", "-q", "-F", p, NULL});
		make_file("zeros.img");
	}
	/* The tampered images of the table, from the good one. */
	for (size_t i = 0; i < ELEMENTSOF(cases); i++)
		if (cases[i].mutate)
			tamper("good4096.img", cases[i].name, cases[i].mutate, cases[i].which);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	return test_fs_rm_rf(tmpdir);
}

static void test_header_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		const struct header_case *c = &cases[i];
		_cleanup_free_ char *p = NULL;
		struct skr_error err = {0};
		int r;

		p = image_path(c->name);
		r = luks_header_check_file(p, &err);
		if (r != c->code || (c->reason && !strstr(err.msg, c->reason)))
			fail_msg("%s: got %d \"%s\", expected %d \"%s\"", c->name, r, err.msg,
			         c->code, c->reason ? c->reason : "");
		if (c->code == 0)
			assert_string_equal(err.msg, "");
	}
}

/* What the allowlist learned agrees with cryptsetup's own view of the image. */
static void test_header_info(void **state)
{
	_cleanup_free_ char *p4096 = image_path("good4096.img"), *p512 = image_path("good512.img");
	struct luks_header_info info;
	struct skr_error err = {0};

	(void)state;
	assert_int_equal(luks_header_check_path(p4096, &info, &err), 0);
	assert_int_equal(info.hdr_size, 16384);
	assert_int_equal(info.sector_size, 4096);
	assert_int_equal(info.data_offset, 16 * 1024 * 1024);
	assert_int_equal(info.data_size, 0);
	assert_int_equal(info.keyslots, 1);
	assert_int_equal(luks_header_check_path(p512, &info, &err), 0);
	assert_int_equal(info.sector_size, 512);
}

static void test_header_corruption(void **state)
{
	_cleanup_free_ char *p = NULL;
	struct skr_error err = {0};
	static const uint8_t junk[] = {'x'};
	static const uint8_t nomagic[6] = {0};

	(void)state;
	/* A byte of the primary's JSON padding changed, checksum left alone. */
	copy_image("good4096.img", "c_checksum.img");
	poke("c_checksum.img", 16000, junk, sizeof(junk));
	p = image_path("c_checksum.img");
	assert_int_equal(luks_header_check_file(p, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "primary header checksum does not match its contents"));
	free(p);

	/* The same in the secondary. */
	skr_error_clear(&err);
	copy_image("good4096.img", "c_checksum2.img");
	poke("c_checksum2.img", 16384 + 5000, junk, sizeof(junk));
	p = image_path("c_checksum2.img");
	assert_int_equal(luks_header_check_file(p, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "secondary header checksum does not match"));
	free(p);

	/* No secondary header at all. */
	skr_error_clear(&err);
	copy_image("good4096.img", "c_nosecondary.img");
	poke("c_nosecondary.img", 16384, nomagic, sizeof(nomagic));
	p = image_path("c_nosecondary.img");
	assert_int_equal(luks_header_check_file(p, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "no secondary header magic at offset 16384"));
	free(p);

	/* Truncated inside the headers, and before the data. */
	skr_error_clear(&err);
	copy_image("good4096.img", "c_trunc.img");
	p = image_path("c_trunc.img");
	assert_int_equal(truncate(p, 16 * 1024 * 1024), 0);
	assert_int_equal(luks_header_check_file(p, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "truncated image: segment 0 needs 16781312 bytes but the "
	                                "image has 16777216"));
	skr_error_clear(&err);
	assert_int_equal(truncate(p, 20000), 0);
	assert_int_equal(luks_header_check_file(p, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "truncated image: the secondary header needs 32768 bytes "
	                                "but only 20000 are there"));
	skr_error_clear(&err);
	assert_int_equal(truncate(p, 100), 0);
	assert_int_equal(luks_header_check_file(p, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "truncated image: the primary header needs 4096"));
	skr_error_clear(&err);
	assert_int_equal(truncate(p, 3), 0);
	assert_int_equal(luks_header_check_file(p, &err), -EMEDIUMTYPE);
	free(p);

	/* Missing file. */
	skr_error_clear(&err);
	p = image_path("absent.img");
	assert_int_equal(luks_header_check_file(p, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "absent.img"));
}

/* The buffer form (the fuzzer's) agrees with the file form on the first bytes of an image. */
static void test_header_buffer(void **state)
{
	_cleanup_free_ char *p = image_path("good4096.img"), *bad = image_path("token.img");
	_cleanup_free_ uint8_t *buf = malloc(65536);
	struct skr_error err = {0};
	FILE *f;

	(void)state;
	assert_non_null(buf);
	f = fopen(p, "re");
	assert_non_null(f);
	assert_int_equal(fread(buf, 1, 65536, f), 65536);
	fclose(f);
	assert_int_equal(luks_header_check_buffer(buf, 65536, &err), 0);
	assert_int_equal(luks_header_check_buffer(buf, 32768, &err), 0);
	assert_int_equal(luks_header_check_buffer(buf, 32767, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "truncated image"));
	skr_error_clear(&err);
	assert_int_equal(luks_header_check_buffer(buf, 0, &err), -EMEDIUMTYPE);

	f = fopen(bad, "re");
	assert_non_null(f);
	assert_int_equal(fread(buf, 1, 32768, f), 32768);
	fclose(f);
	skr_error_clear(&err);
	assert_int_equal(luks_header_check_buffer(buf, 32768, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "tokens holds token 0"));
}

/* ---- the key, without device-mapper ---- */

static struct secret *passphrase(const char *s)
{
	struct secret *k = secret_new_copy(s, strlen(s));

	assert_non_null(k);
	return k;
}

static void test_key_right_and_wrong(void **state)
{
	static const char *const images[] = {"good4096.img", "good512.img", "argon2id.img",
	                                     "t_config_no_journal.img"};
	_cleanup_secret_ struct secret *right = passphrase(PASSPHRASE);
	_cleanup_secret_ struct secret *wrong = passphrase(WRONG_PASSPHRASE);
	char fp[SKR_FINGERPRINT_STR_SIZE], expected[256];

	(void)state;
	skr_key_fingerprint(wrong->data, wrong->len, fp);
	snprintf(expected, sizeof(expected),
	         "wrong key: no keyslot accepts the released key (fingerprint %s); compare with "
	         "importkey's output",
	         fp);
	for (size_t i = 0; i < ELEMENTSOF(images); i++) {
		_cleanup_free_ char *p = image_path(images[i]);
		struct skr_error err = {0};

		assert_int_equal(luks_check_passphrase(p, right, &err), 0);
		assert_int_equal(luks_check_passphrase(p, wrong, &err), -EPERM);
		assert_string_equal(err.msg, expected);
		/* The key itself never appears. */
		assert_null(strstr(err.msg, WRONG_PASSPHRASE));
	}
}

/* The image libcryptsetup alone accepts with the right key is refused before the key is tried. */
static void test_refused_before_activation(void **state)
{
	_cleanup_secret_ struct secret *right = passphrase(PASSPHRASE);
	static const char *const tampered[] = {"t_segment_cipher_null.img", "token.img",
	                                       "t_integrity.img", "t_secondary_differs.img",
	                                       "keyslot_cipher.img"};

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(tampered); i++) {
		_cleanup_free_ char *p = image_path(tampered[i]);
		struct skr_error err = {0};
		char *dm_path = NULL;
		int r;

		/* Without the allowlist: libcryptsetup loads the header and the key "works". */
		if (strcmp(tampered[i], "t_integrity.img") != 0) {
			struct crypt_device *cd = NULL;

			assert_int_equal(crypt_init(&cd, p), 0);
			assert_int_equal(crypt_load(cd, CRYPT_LUKS2, NULL), 0);
			r = crypt_activate_by_passphrase(cd, NULL, CRYPT_ANY_SLOT, PASSPHRASE,
			                                 strlen(PASSPHRASE), 0);
			assert_true(r >= 0);
			crypt_free(cd);
		}
		/* With it: refused, naming the header, before any activation. */
		assert_int_equal(luks_check_passphrase(p, right, &err), -EBADMSG);
		assert_non_null(strstr(err.msg, "LUKS header refused: "));
		skr_error_clear(&err);
		r = luks_open(p, "encfs-test-refused", right, true, &dm_path, &err);
		assert_int_equal(r, -EBADMSG);
		assert_non_null(strstr(err.msg, "LUKS header refused: "));
		assert_null(dm_path);
		assert_int_equal(access("/dev/mapper/encfs-test-refused", F_OK), -1);
	}
}

/* luks_open() itself: a wrong key is reported as such; the right key gets as far as activation. */
static void test_luks_open_host(void **state)
{
	_cleanup_free_ char *p = image_path("good4096.img"), *ext4 = image_path("ext4.img");
	_cleanup_secret_ struct secret *right = passphrase(PASSPHRASE);
	_cleanup_secret_ struct secret *wrong = passphrase(WRONG_PASSPHRASE);
	struct secret empty = {0};
	struct skr_error err = {0};
	char *dm_path = NULL;
	int r;

	(void)state;
	assert_int_equal(luks_open(p, "encfs-test-wrong", wrong, true, &dm_path, &err), -EPERM);
	assert_non_null(strstr(err.msg, "wrong key: no keyslot accepts the released key"));
	assert_null(dm_path);

	skr_error_clear(&err);
	assert_int_equal(luks_open(ext4, "encfs-test-ext4", right, true, &dm_path, &err),
	                 -EMEDIUMTYPE);
	skr_error_clear(&err);
	assert_int_equal(luks_open(p, "bad/name", right, true, &dm_path, &err), -EINVAL);
	skr_error_clear(&err);
	assert_int_equal(luks_open(p, "encfs-test-empty", &empty, true, &dm_path, &err), -EINVAL);

	skr_error_clear(&err);
	r = luks_open(p, "encfs-test-open", right, true, &dm_path, &err);
	if (r == 0) {
		/* A machine with device-mapper: the mapping is real; close it. */
		assert_string_equal(dm_path, "/dev/mapper/encfs-test-open");
		free(dm_path);
		assert_int_equal(luks_close("encfs-test-open", &err), 0);
	} else {
		/* No device-mapper here: every check passed, activation itself failed. */
		assert_int_not_equal(r, -EBADMSG);
		assert_int_not_equal(r, -EPERM);
		assert_non_null(strstr(err.msg, "activating"));
		assert_null(dm_path);
	}
	skr_error_clear(&err);
	assert_true(luks_close("encfs-test-never-opened", &err) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_header_table),
	        cmocka_unit_test(test_header_info),
	        cmocka_unit_test(test_header_corruption),
	        cmocka_unit_test(test_header_buffer),
	        cmocka_unit_test(test_key_right_and_wrong),
	        cmocka_unit_test(test_refused_before_activation),
	        cmocka_unit_test(test_luks_open_host),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
