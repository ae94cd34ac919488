/* SPDX-License-Identifier: MIT */
/*
 * dm-verity over a whole LUKS image, the layout generatefs --read-only-verity writes:
 *
 *   [0, data_size)              the LUKS image (header + encrypted ext4), 4096-byte data blocks
 *   [data_size, +4096)          verity superblock (veritysetup's format, version 1)
 *   [data_size + 4096, total)   hash tree, sha256, 4096-byte hash blocks, top level first
 *
 * One file, so the blob holds everything and the storage operator cannot swap a part. Format
 * and open go through libcryptsetup (the userspace tree builder that veritysetup uses), the hash
 * area found with hash_area_offset = data_size, exactly like `veritysetup --hash-offset`.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libcryptsetup.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "b64.h"
#include "cleanup.h"
#include "crypt_lock.h"
#include "encfs.h"
#include "log.h"

#define VERITY_BLOCK_SIZE 4096u
#define VERITY_DIGEST_SIZE 32u        /* sha256 */
#define VERITY_SALT_SIZE 32u          /* veritysetup's default */
#define VERITY_HASH_PER_BLOCK_BITS 7u /* log2(4096 / 32) */
#define VERITY_MAX_LEVELS 63u         /* libcryptsetup's limit */

DEFINE_CLEANUP_FUNC(struct crypt_device *, crypt_free)

/* libcryptsetup's messages: errors are kept for the caller's error line, all go to debug. */
struct verity_log {
	char last_error[256];
};

static void verity_log_cb(int level, const char *msg, void *usrptr)
{
	struct verity_log *l = usrptr;
	size_t n;

	if (!msg)
		return;
	log_debug("libcryptsetup: %s", msg);
	if (level == CRYPT_LOG_ERROR && l) {
		snprintf(l->last_error, sizeof(l->last_error), "%s", msg);
		n = strlen(l->last_error);
		while (n > 0 && (l->last_error[n - 1] == '\n' || l->last_error[n - 1] == '.'))
			l->last_error[--n] = '\0';
	}
}

/* " (libcryptsetup: <its last error>)" or "" */
static const char *verity_log_reason(const struct verity_log *l, char *buf, size_t len)
{
	if (!l->last_error[0])
		return "";
	snprintf(buf, len, " (libcryptsetup: %s)", l->last_error);
	return buf;
}

/* Hash blocks below the superblock for @data_blocks, as libcryptsetup's hash_levels() lays
 * them out: level i holds ceil(n / 128^(i+1)) blocks, as many levels as make the top one block. */
static uint64_t verity_tree_blocks(uint64_t data_blocks)
{
	uint64_t total = 0;
	unsigned levels = 0;

	if (data_blocks == 0)
		return 0;
	while (VERITY_HASH_PER_BLOCK_BITS * levels < 64 &&
	       ((data_blocks - 1) >> (VERITY_HASH_PER_BLOCK_BITS * levels)))
		levels++;
	for (unsigned i = 0; i < levels; i++) {
		unsigned shift = (i + 1) * VERITY_HASH_PER_BLOCK_BITS;

		if (shift >= 64)
			total += 1;
		else
			total += (data_blocks + (UINT64_C(1) << shift) - 1) >> shift;
	}
	return total;
}

uint64_t verity_hash_area_size(uint64_t data_size)
{
	uint64_t data_blocks = data_size / VERITY_BLOCK_SIZE;

	/* the superblock is padded to one hash block (VERITY_hash_offset_block) */
	return VERITY_BLOCK_SIZE + verity_tree_blocks(data_blocks) * VERITY_BLOCK_SIZE;
}

int verity_layout_from_total(uint64_t total, uint64_t *data_size, struct skr_error *err)
{
	uint64_t lo = 1, hi, blocks = total / VERITY_BLOCK_SIZE;

	if (total % VERITY_BLOCK_SIZE || blocks < 2)
		return skr_error_set(err, -EINVAL,
		                     "verity: %" PRIu64
		                     " bytes is not a verity image of ours (expected "
		                     "a multiple of 4096 bytes holding data and its hash area)",
		                     total);
	/* data + area grows strictly with the data blocks: bisect for an exact fit */
	hi = blocks - 1;
	while (lo <= hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		uint64_t t =
		        mid * VERITY_BLOCK_SIZE + verity_hash_area_size(mid * VERITY_BLOCK_SIZE);

		if (t == total) {
			*data_size = mid * VERITY_BLOCK_SIZE;
			return 0;
		}
		if (t < total)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return skr_error_set(err, -EINVAL,
	                     "verity: no data size gives an image of exactly %" PRIu64
	                     " bytes with its hash area appended: not a verity image of ours",
	                     total);
}

/* A UUID (text) derived from the salt, so the superblock is reproducible when the salt is. */
static int verity_uuid_from_salt(const uint8_t *salt, size_t len, char uuid[37])
{
	uint8_t md[32];
	unsigned md_len = 0;

	if (EVP_Digest(salt, len, md, &md_len, EVP_sha256(), NULL) != 1)
		return -EIO;
	md[6] = (md[6] & 0x0f) | 0x80; /* RFC 4122 version 8: custom, name-derived */
	md[8] = (md[8] & 0x3f) | 0x80;
	snprintf(uuid, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	         md[0], md[1], md[2], md[3], md[4], md[5], md[6], md[7], md[8], md[9], md[10],
	         md[11], md[12], md[13], md[14], md[15]);
	return 0;
}

int verity_format(const char *path, uint64_t data_size, const char *salt_hex, char root_hash[65],
                  struct skr_error *err)
{
	CRYPT_SESSION_SCOPE;
	_cleanup_(crypt_freep) struct crypt_device *cd = NULL;
	_cleanup_close_ int fd = -1;
	struct verity_log vlog = {{0}};
	uint8_t salt[VERITY_SALT_SIZE], root[VERITY_DIGEST_SIZE];
	size_t root_len = sizeof(root);
	uint64_t total;
	char uuid[37], why[300];
	struct stat st;
	int r;

	if (data_size == 0 || data_size % VERITY_BLOCK_SIZE)
		return skr_error_set(
		        err, -EINVAL,
		        "verity: data size %" PRIu64
		        " must be a non-zero multiple of 4096 bytes (the verity block size)",
		        data_size);
	if (salt_hex) {
		if (strlen(salt_hex) != 2 * VERITY_SALT_SIZE ||
		    hex_decode(salt_hex, strlen(salt_hex), salt, sizeof(salt)) < 0)
			return skr_error_set(err, -EINVAL,
			                     "verity: the salt must be %u hex digits (%u bytes)",
			                     2 * VERITY_SALT_SIZE, VERITY_SALT_SIZE);
	} else if (RAND_bytes(salt, sizeof(salt)) != 1) {
		return skr_error_set(err, -EIO, "verity: no random bytes for the salt");
	}
	r = verity_uuid_from_salt(salt, sizeof(salt), uuid);
	if (r < 0)
		return skr_error_set(err, r, "verity: cannot derive the superblock UUID");

	/* The hash area goes right after the data: size the file for it (never cut data off). */
	total = data_size + verity_hash_area_size(data_size);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return skr_error_set(err, -errno, "verity: cannot open %s: %s", path,
		                     skr_strerror(errno));
	if (fstat(fd, &st) < 0)
		return skr_error_set(err, -errno, "verity: stat %s: %s", path, skr_strerror(errno));
	if (!S_ISREG(st.st_mode))
		return skr_error_set(err, -EINVAL, "verity: %s is not a regular file", path);
	if ((uint64_t)st.st_size < data_size)
		return skr_error_set(
		        err, -EINVAL,
		        "verity: %s holds %lld bytes, less than the data size %" PRIu64, path,
		        (long long)st.st_size, data_size);
	if (ftruncate(fd, (off_t)total) < 0)
		return skr_error_set(err, -errno,
		                     "verity: cannot grow %s to %" PRIu64
		                     " bytes for the hash area: %s",
		                     path, total, skr_strerror(errno));

	r = crypt_init_data_device(&cd, path, path);
	if (r < 0)
		return skr_error_set(err, r, "verity: libcryptsetup cannot use %s: %s", path,
		                     skr_strerror(r));
	crypt_set_log_callback(cd, verity_log_cb, &vlog);

	struct crypt_params_verity params = {
	        .hash_name = "sha256",
	        .data_device = path,
	        .salt = (const char *)salt,
	        .salt_size = sizeof(salt),
	        .hash_type = 1,
	        .data_block_size = VERITY_BLOCK_SIZE,
	        .hash_block_size = VERITY_BLOCK_SIZE,
	        .data_size = data_size / VERITY_BLOCK_SIZE,
	        .hash_area_offset = data_size,
	        .flags = CRYPT_VERITY_CREATE_HASH,
	};
	r = crypt_format(cd, CRYPT_VERITY, NULL, NULL, uuid, NULL, 0, &params);
	if (r < 0)
		return skr_error_set(err, r, "verity: building the hash tree of %s failed: %s%s",
		                     path, skr_strerror(r),
		                     verity_log_reason(&vlog, why, sizeof(why)));
	/* for CRYPT_VERITY the "volume key" is the root hash */
	r = crypt_volume_key_get(cd, CRYPT_ANY_SLOT, (char *)root, &root_len, NULL, 0);
	if (r < 0 || root_len != sizeof(root))
		return skr_error_set(err, r < 0 ? r : -EIO, "verity: no root hash for %s%s", path,
		                     verity_log_reason(&vlog, why, sizeof(why)));
	/* the tree is in the page cache; make it durable like the data before it */
	if (fsync(fd) < 0)
		return skr_error_set(err, -errno, "verity: fsync %s: %s", path,
		                     skr_strerror(errno));
	hex_encode(root, sizeof(root), root_hash);
	return 0;
}

/* Load the verity superblock at the data size the file's length implies and check that it is
 * the layout we write (no other hash, block size or data size accepted). */
static int verity_load(const char *path, uint32_t flags, struct crypt_device **out,
                       struct verity_log *vlog, struct skr_error *err)
{
	_cleanup_(crypt_freep) struct crypt_device *cd = NULL;
	_cleanup_close_ int fd = -1;
	struct crypt_params_verity got = {0};
	uint64_t data_size;
	char why[300];
	off_t end;
	int r;

	/* the length of a file or a block device alike */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return skr_error_set(err, -errno, "verity: cannot open %s: %s", path,
		                     skr_strerror(errno));
	end = lseek(fd, 0, SEEK_END);
	if (end < 0)
		return skr_error_set(err, -errno, "verity: size of %s: %s", path,
		                     skr_strerror(errno));
	r = verity_layout_from_total((uint64_t)end, &data_size, err);
	if (r < 0)
		return skr_error_prefix(err, "%s: ", path);

	r = crypt_init_data_device(&cd, path, path);
	if (r < 0)
		return skr_error_set(err, r, "verity: libcryptsetup cannot use %s: %s", path,
		                     skr_strerror(r));
	crypt_set_log_callback(cd, verity_log_cb, vlog);
	struct crypt_params_verity params = {
	        .hash_area_offset = data_size,
	        .flags = flags,
	};
	r = crypt_load(cd, CRYPT_VERITY, &params);
	if (r < 0)
		return skr_error_set(
		        err, r, "verity: no verity superblock in %s at offset %" PRIu64 ": %s%s",
		        path, data_size, skr_strerror(r),
		        verity_log_reason(vlog, why, sizeof(why)));
	r = crypt_get_verity_info(cd, &got);
	if (r < 0)
		return skr_error_set(err, r, "verity: %s: cannot read the superblock parameters",
		                     path);
	if (!got.hash_name || strcmp(got.hash_name, "sha256") != 0 || got.hash_type != 1 ||
	    got.data_block_size != VERITY_BLOCK_SIZE || got.hash_block_size != VERITY_BLOCK_SIZE ||
	    got.data_size != data_size / VERITY_BLOCK_SIZE || (got.flags & CRYPT_VERITY_NO_HEADER))
		return skr_error_set(
		        err, -EBADMSG,
		        "verity: %s: superblock (hash %s, type %u, blocks %u/%u, %" PRIu64
		        " data blocks) is not the layout of generatefs (sha256, type 1, "
		        "4096/4096, %" PRIu64 " data blocks)",
		        path, got.hash_name ? got.hash_name : "?", got.hash_type,
		        got.data_block_size, got.hash_block_size, got.data_size,
		        data_size / VERITY_BLOCK_SIZE);
	*out = TAKE_PTR(cd);
	return 0;
}

int verity_open(const char *path, const char *name, const char *root_hash, char **dm_path,
                struct skr_error *err)
{
	CRYPT_SESSION_SCOPE;
	_cleanup_(crypt_freep) struct crypt_device *cd = NULL;
	struct verity_log vlog = {{0}};
	uint8_t root[VERITY_DIGEST_SIZE];
	char why[300];
	int r;

	if (!root_hash || strlen(root_hash) != 2 * VERITY_DIGEST_SIZE ||
	    hex_decode(root_hash, strlen(root_hash), root, sizeof(root)) < 0)
		return skr_error_set(err, -EINVAL,
		                     "verity: the root hash must be %u hex digits (sha256), as "
		                     "generatefs --read-only-verity prints it",
		                     2 * VERITY_DIGEST_SIZE);
	/* CHECK_HASH hashes every block in userspace: only for the check without a mapping (a
	 * mapping is checked by the kernel block by block as it is read, lazily) */
	r = verity_load(path, name ? 0 : CRYPT_VERITY_CHECK_HASH, &cd, &vlog, err);
	if (r < 0)
		return r;

	/*
	 * With a name: a read-only mapping whose every read the kernel checks against the tree.
	 * Without one: libcryptsetup hashes the whole data area in userspace against @root_hash
	 * (veritysetup verify) and activates nothing, for hosts without device-mapper.
	 */
	r = crypt_activate_by_volume_key(cd, name, (const char *)root, sizeof(root),
	                                 CRYPT_ACTIVATE_READONLY);
	if (r == -EPERM || r == -EFAULT)
		return skr_error_set(
		        err, -EBADMSG,
		        "verity: %s does not match the pinned root hash %.16s…: the image "
		        "or its hash tree was modified%s",
		        path, root_hash, verity_log_reason(&vlog, why, sizeof(why)));
	if (r < 0)
		return skr_error_set(err, r, "verity: activating %s as %s failed: %s%s", path,
		                     name ? name : "(check only)", skr_strerror(r),
		                     verity_log_reason(&vlog, why, sizeof(why)));
	if (name && dm_path) {
		if (asprintf(dm_path, "%s/%s", crypt_get_dir(), name) < 0) {
			*dm_path = NULL;
			crypt_deactivate(cd, name);
			return skr_error_set(err, -ENOMEM, "verity: out of memory");
		}
	} else if (dm_path) {
		*dm_path = NULL;
	}
	log_info("verity: %s %s (root hash %.16s…)", path, name ? "activated" : "verified",
	         root_hash);
	return 0;
}

int verity_close(const char *name, struct skr_error *err)
{
	CRYPT_SESSION_SCOPE;
	_cleanup_(crypt_freep) struct crypt_device *cd = NULL;
	struct verity_log vlog = {{0}};
	char why[300];
	int r;

	if (!name || !*name)
		return skr_error_set(err, -EINVAL, "verity: no mapping name to close");
	r = crypt_init_by_name(&cd, name);
	if (r == -ENODEV || (r >= 0 && crypt_status(cd, name) == CRYPT_INACTIVE))
		return 0; /* already gone: closing is idempotent */
	if (r < 0)
		return skr_error_set(err, r, "verity: cannot look up mapping %s: %s", name,
		                     skr_strerror(r));
	crypt_set_log_callback(cd, verity_log_cb, &vlog);
	r = crypt_deactivate(cd, name);
	if (r < 0)
		return skr_error_set(err, r, "verity: closing %s failed: %s%s", name,
		                     skr_strerror(r), verity_log_reason(&vlog, why, sizeof(why)));
	return 0;
}
