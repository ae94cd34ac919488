/* SPDX-License-Identifier: MIT */
/*
 * The LUKS2 header, written by libcryptsetup on the image file itself (no device-mapper is
 * involved in formatting): the parameters of the Go tool's generatefs.sh (protocols.md §7.3),
 * which `cryptsetup open --key-file` and the sidecar's header allowlist both accept.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <libcryptsetup.h>

#include "cleanup.h"
#include "generatefs.h"
#include "log.h"

DEFINE_CLEANUP_FUNC(struct crypt_device *, crypt_free)

struct luks_log {
	char last_error[256];
};

static void luks_log_cb(int level, const char *msg, void *usrptr)
{
	struct luks_log *l = usrptr;
	size_t n;

	if (!msg)
		return;
	log_debug("libcryptsetup: %s", msg);
	if (level == CRYPT_LOG_ERROR) {
		snprintf(l->last_error, sizeof(l->last_error), "%s", msg);
		n = strlen(l->last_error);
		while (n > 0 && (l->last_error[n - 1] == '\n' || l->last_error[n - 1] == '.'))
			l->last_error[--n] = '\0';
	}
}

int generatefs_luks_format(const char *path, const struct secret *passphrase, unsigned sector_size,
                           const char *uuid, const char *label, struct secret **volume_key,
                           char uuid_out[37], struct skr_error *err)
{
	_cleanup_(crypt_freep) struct crypt_device *cd = NULL;
	_cleanup_secret_ struct secret *vk = NULL;
	struct luks_log llog = {{0}};
	size_t vk_len = GENERATEFS_VOLUME_KEY_SIZE;
	const char *got_uuid;
	int r, slot;

	if (!passphrase || passphrase->len != GENERATEFS_KEY_SIZE)
		return skr_error_set(err, -EINVAL, "luks: the key must be %d bytes",
		                     GENERATEFS_KEY_SIZE);
	if (sector_size != 512 && sector_size != 4096)
		return skr_error_set(err, -EINVAL, "luks: sector size %u: use 512 or 4096",
		                     sector_size);
	r = crypt_init(&cd, path);
	if (r < 0)
		return skr_error_set(err, r, "luks: libcryptsetup cannot use %s: %s", path,
		                     skr_strerror(r));
	crypt_set_log_callback(cd, luks_log_cb, &llog);

	/*
	 * pbkdf2 with the minimum count and no benchmark: the passphrase is a random 256-bit key,
	 * so key stretching adds no security, only seconds at every open (and the Go tool's
	 * images use the same 1000 iterations).
	 */
	struct crypt_pbkdf_type pbkdf = {
	        .type = CRYPT_KDF_PBKDF2,
	        .hash = "sha256",
	        .iterations = GENERATEFS_PBKDF2_ITERATIONS,
	        .flags = CRYPT_PBKDF_NO_BENCHMARK,
	};
	struct crypt_params_luks2 params = {
	        .pbkdf = &pbkdf,
	        .sector_size = sector_size,
	        .label = label,
	};
	/* cryptsetup's default data offset: 16 MiB, in 512-byte sectors */
	r = crypt_set_data_offset(cd, GENERATEFS_DATA_OFFSET / 512);
	if (r < 0)
		return skr_error_set(err, r, "luks: data offset: %s", skr_strerror(r));
	/* NULL volume key: libcryptsetup draws 64 random bytes (its RNG, /dev/urandom) */
	r = crypt_format(cd, CRYPT_LUKS2, "aes", "xts-plain64", uuid, NULL,
	                 GENERATEFS_VOLUME_KEY_SIZE, &params);
	if (r < 0)
		return skr_error_set(err, r,
		                     "luks: writing the LUKS2 header to %s failed: %s%s%s%s", path,
		                     skr_strerror(r), llog.last_error[0] ? " (libcryptsetup: " : "",
		                     llog.last_error, llog.last_error[0] ? ")" : "");
	slot = crypt_keyslot_add_by_volume_key(cd, CRYPT_ANY_SLOT, NULL, 0,
	                                       (const char *)passphrase->data, passphrase->len);
	if (slot < 0)
		return skr_error_set(err, slot, "luks: adding the keyslot failed: %s%s%s%s",
		                     skr_strerror(slot),
		                     llog.last_error[0] ? " (libcryptsetup: " : "", llog.last_error,
		                     llog.last_error[0] ? ")" : "");

	/* Read the volume key back through the keyslot just written: proves the key opens it. */
	vk = secret_new(GENERATEFS_VOLUME_KEY_SIZE);
	if (!vk)
		return skr_error_set(err, -ENOMEM, "luks: out of memory");
	r = crypt_volume_key_get(cd, slot, (char *)vk->data, &vk_len,
	                         (const char *)passphrase->data, passphrase->len);
	if (r < 0 || vk_len != GENERATEFS_VOLUME_KEY_SIZE)
		return skr_error_set(err, r < 0 ? r : -EIO,
		                     "luks: the new keyslot does not open with the key: %s",
		                     skr_strerror(r < 0 ? r : -EIO));
	got_uuid = crypt_get_uuid(cd);
	snprintf(uuid_out, 37, "%s", got_uuid ? got_uuid : "");
	log_debug("luks: LUKS2 header written, UUID %s, keyslot %d, sector %u", uuid_out, slot,
	          sector_size);
	*volume_key = TAKE_PTR(vk);
	return 0;
}
