/* SPDX-License-Identifier: MIT */
/*
 * Opening a LUKS2 image with the released key, from memory (the Go sidecar writes the key to a
 * file for `cryptsetup open`; we hand libcryptsetup a pointer to locked memory).
 *
 * Order matters: the allowlist runs on the raw bytes first (luks_header.c), then libcryptsetup
 * loads the header and its view is checked again against the same allowlist and against the
 * facts our parser found (a file that changed between the two reads, or a difference between the
 * two parsers, is refused), and only then is the key tried.
 */
#include "luks_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <libcryptsetup.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "bytes.h"
#include "cleanup.h"
#include "crypt_lock.h"
#include "log.h"
#include "secret.h"
#include "skr.h"

DEFINE_CLEANUP_FUNC(struct crypt_device *, crypt_free)

#define REFUSED "LUKS header refused: "
#define TAMPERED " (the image was tampered with or not made by generatefs)"

/* Device-mapper names are at most 127 characters (DM_NAME_LEN - 1). */
#define DM_NAME_MAX 127

/* Deactivation right after an unmount can race with udev holding the device open. */
#define CLOSE_ATTEMPTS 20
#define CLOSE_DELAY_MS 100

/* libcryptsetup's messages go to our log at debug level; the last error is kept for @err. */
struct crypt_log_capture {
	char last_error[200];
};

static void crypt_log_to_ours(int level, const char *msg, void *userdata)
{
	struct crypt_log_capture *cap = userdata;
	size_t n = strcspn(msg, "\n");

	if (level == CRYPT_LOG_ERROR && cap)
		snprintf(cap->last_error, sizeof(cap->last_error), "%.*s", (int)n, msg);
	if (level == CRYPT_LOG_DEBUG || level == CRYPT_LOG_DEBUG_JSON)
		log_trace("libcryptsetup: %.*s", (int)n, msg);
	else
		log_debug("libcryptsetup: %.*s", (int)n, msg);
}

static void route_default_log(void)
{
	crypt_set_log_callback(NULL, crypt_log_to_ours, NULL);
}

void luks_log_setup(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	/* Messages without a device context ("Cannot initialize device-mapper") would go to
	 * stderr past our logger. */
	pthread_once(&once, route_default_log);
}

static int check_name(const char *name, struct skr_error *err)
{
	if (!name || !*name || strlen(name) > DM_NAME_MAX || strchr(name, '/') ||
	    strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return skr_error_set(err, -EINVAL,
		                     "LUKS: mapping name \"%s\" is not a valid device-mapper name "
		                     "(1-%d characters, no '/')",
		                     name ? name : "(null)", DM_NAME_MAX);
	return 0;
}

/* The allowlist again, on what libcryptsetup parsed, and agreement with our own parse. */
static int check_loaded(struct crypt_device *cd, const struct luks_header_info *info,
                        struct skr_error *err)
{
	struct crypt_params_integrity ip = {0};
	uint32_t requirements = 0, flags = 0;
	const char *cipher = crypt_get_cipher(cd), *mode = crypt_get_cipher_mode(cd);
	unsigned active = 0;
	int r;

	if (!crypt_get_type(cd) || strcmp(crypt_get_type(cd), CRYPT_LUKS2) != 0)
		return skr_error_set(err, -EBADMSG,
		                     REFUSED "libcryptsetup loaded type %s, not LUKS2",
		                     crypt_get_type(cd) ? crypt_get_type(cd) : "(none)");
	if (!cipher || !mode || strcmp(cipher, "aes") != 0 || strcmp(mode, "xts-plain64") != 0)
		return skr_error_set(err, -EBADMSG,
		                     REFUSED
		                     "segment 0 cipher as loaded by libcryptsetup is "
		                     "\"%.32s-%.32s\", only aes-xts-plain64 is accepted" TAMPERED,
		                     cipher ? cipher : "?", mode ? mode : "?");
	if (crypt_get_volume_key_size(cd) != 64)
		return skr_error_set(err, -EBADMSG,
		                     REFUSED
		                     "volume key size as loaded by libcryptsetup is %d bytes, "
		                     "only 64 is accepted" TAMPERED,
		                     crypt_get_volume_key_size(cd));
	if (crypt_get_sector_size(cd) != (int)info->sector_size)
		return skr_error_set(err, -EBADMSG,
		                     REFUSED
		                     "sector size as loaded by libcryptsetup is %d, the header "
		                     "read before said %" PRIu32 " (did the image change?)",
		                     crypt_get_sector_size(cd), info->sector_size);
	if (crypt_get_data_offset(cd) * 512 != info->data_offset)
		return skr_error_set(err, -EBADMSG,
		                     REFUSED "data offset as loaded by libcryptsetup is %" PRIu64
		                             " bytes, the header read before said %" PRIu64
		                             " (did the image change?)",
		                     crypt_get_data_offset(cd) * 512, info->data_offset);
	/* The dm-crypt table is built from this view: the IV tweak and the persistent activation
	 * flags (allow-discards and the like) must be what the raw check accepted too (no-journal,
	 * which the Go sidecar persists, means nothing without dm-integrity). */
	if (crypt_get_iv_offset(cd) != 0)
		return skr_error_set(err, -EBADMSG,
		                     REFUSED "IV offset as loaded by libcryptsetup is %" PRIu64
		                             ", only 0 is accepted" TAMPERED,
		                     crypt_get_iv_offset(cd));
	r = crypt_persistent_flags_get(cd, CRYPT_FLAGS_ACTIVATION, &flags);
	if (r < 0 || (flags & ~(uint32_t)CRYPT_ACTIVATE_NO_JOURNAL) != 0)
		return skr_error_set(err, -EBADMSG,
		                     REFUSED "libcryptsetup reports persistent activation flags "
		                             "0x%" PRIx32 ", only no-journal is accepted" TAMPERED,
		                     flags);
	r = crypt_persistent_flags_get(cd, CRYPT_FLAGS_REQUIREMENTS, &requirements);
	if (r < 0 || requirements != 0)
		return skr_error_set(err, -EBADMSG,
		                     REFUSED "libcryptsetup reports requirements 0x%" PRIx32
		                             " (reencryption in progress?)" TAMPERED,
		                     requirements);
	if (crypt_reencrypt_status(cd, NULL) != CRYPT_REENCRYPT_NONE)
		return skr_error_set(err, -EBADMSG,
		                     REFUSED "libcryptsetup reports a reencryption state" TAMPERED);
	r = crypt_get_integrity_info(cd, &ip);
	if (r < 0 || ip.integrity)
		return skr_error_set(err, -EBADMSG,
		                     REFUSED
		                     "libcryptsetup reports integrity \"%.40s\" on segment 0, "
		                     "none is accepted" TAMPERED,
		                     ip.integrity ? ip.integrity : "?");

	for (int t = 0; t < crypt_token_max(CRYPT_LUKS2); t++) {
		const char *type = NULL;

		if (crypt_token_status(cd, t, &type) != CRYPT_TOKEN_INACTIVE)
			return skr_error_set(err, -EBADMSG,
			                     REFUSED
			                     "libcryptsetup reports token %d (type \"%.40s\"), "
			                     "no tokens are accepted" TAMPERED,
			                     t, type ? type : "?");
	}
	for (int k = 0; k < crypt_keyslot_max(CRYPT_LUKS2); k++) {
		crypt_keyslot_info st = crypt_keyslot_status(cd, k);
		struct crypt_pbkdf_type pbkdf = {0};
		const char *enc;
		size_t key_size = 0;

		if (st == CRYPT_SLOT_INACTIVE)
			continue;
		if (st != CRYPT_SLOT_ACTIVE && st != CRYPT_SLOT_ACTIVE_LAST)
			return skr_error_set(err, -EBADMSG,
			                     REFUSED
			                     "libcryptsetup reports keyslot %d as unbound or "
			                     "invalid" TAMPERED,
			                     k);
		enc = crypt_keyslot_get_encryption(cd, k, &key_size);
		if (!enc || strcmp(enc, "aes-xts-plain64") != 0 || key_size != 64)
			return skr_error_set(err, -EBADMSG,
			                     REFUSED
			                     "keyslot %d area encryption as loaded by "
			                     "libcryptsetup is \"%.40s\" with a %zu-byte key, only "
			                     "aes-xts-plain64 with 64 is accepted" TAMPERED,
			                     k, enc ? enc : "?", key_size);
		if (crypt_keyslot_get_pbkdf(cd, k, &pbkdf) < 0 || !pbkdf.type ||
		    (strcmp(pbkdf.type, CRYPT_KDF_PBKDF2) != 0 &&
		     strcmp(pbkdf.type, CRYPT_KDF_ARGON2I) != 0 &&
		     strcmp(pbkdf.type, CRYPT_KDF_ARGON2ID) != 0))
			return skr_error_set(err, -EBADMSG,
			                     REFUSED
			                     "keyslot %d kdf as loaded by libcryptsetup is "
			                     "\"%.40s\", only pbkdf2, argon2i or argon2id is "
			                     "accepted" TAMPERED,
			                     k, pbkdf.type ? pbkdf.type : "?");
		active++;
	}
	if (active != info->keyslots)
		return skr_error_set(err, -EBADMSG,
		                     REFUSED
		                     "libcryptsetup sees %u keyslots, the header read before "
		                     "had %u (did the image change?)",
		                     active, info->keyslots);
	return 0;
}

/* Allowlist on the raw bytes, load with libcryptsetup, allowlist on its view. */
static int load_checked(const char *device, struct crypt_log_capture *cap,
                        struct crypt_device **out, struct skr_error *err)
{
	_cleanup_(crypt_freep) struct crypt_device *cd = NULL;
	struct luks_header_info info;
	int r;

	r = luks_header_check_path(device, &info, err);
	if (r < 0)
		return r;
	r = crypt_init(&cd, device);
	if (r < 0)
		return skr_error_set(err, r, "LUKS: cannot use %s: %s", device, skr_strerror(r));
	crypt_set_log_callback(cd, crypt_log_to_ours, cap);
	r = crypt_load(cd, CRYPT_LUKS2, NULL);
	if (r < 0)
		return skr_error_set(err, r == -EINVAL ? -EBADMSG : r,
		                     "LUKS: libcryptsetup cannot load the header of %s: %s%s%s",
		                     device, skr_strerror(r), cap->last_error[0] ? ": " : "",
		                     cap->last_error);
	r = check_loaded(cd, &info, err);
	if (r < 0)
		return r;
	*out = TAKE_PTR(cd);
	return 0;
}

static int wrong_key(const struct secret *passphrase, struct skr_error *err)
{
	char fp[SKR_FINGERPRINT_STR_SIZE];

	skr_key_fingerprint(passphrase->data, passphrase->len, fp);
	return skr_error_set(err, -EPERM,
	                     "wrong key: no keyslot accepts the released key (fingerprint %s); "
	                     "compare with importkey's output",
	                     fp);
}

static int check_passphrase_arg(const struct secret *passphrase, struct skr_error *err)
{
	if (!passphrase || !passphrase->data || passphrase->len == 0)
		return skr_error_set(err, -EINVAL,
		                     "LUKS: no passphrase (the released key is empty)");
	return 0;
}

/*
 * Run the keyslots' KDF once with @passphrase and get the volume key into locked memory. A NULL
 * name to crypt_activate_by_passphrase() would check the key too, but activation would then
 * run the KDF a second time; with the volume key in hand, activation only verifies its digest.
 */
static int unlock_volume_key(struct crypt_device *cd, const char *device,
                             const struct secret *passphrase, const struct crypt_log_capture *cap,
                             struct secret **out, struct skr_error *err)
{
	_cleanup_secret_ struct secret *vk = NULL;
	size_t vk_size;
	int r;

	vk_size = (size_t)crypt_get_volume_key_size(cd);
	vk = secret_new(vk_size);
	if (!vk)
		return skr_error_set(err, -ENOMEM, "LUKS: out of memory");
	r = crypt_volume_key_get(cd, CRYPT_ANY_SLOT, (char *)vk->data, &vk_size,
	                         (const char *)passphrase->data, passphrase->len);
	if (r == -EPERM)
		return wrong_key(passphrase, err);
	if (r < 0)
		return skr_error_set(err, r, "LUKS: trying the key on %s failed: %s%s%s", device,
		                     skr_strerror(r), cap->last_error[0] ? ": " : "",
		                     cap->last_error);
	if (vk_size != vk->len)
		return skr_error_set(err, -EBADMSG, REFUSED "the volume key has %zu bytes, not %zu",
		                     vk_size, vk->len);
	*out = TAKE_PTR(vk);
	return r; /* the keyslot */
}

/*
 * What opening and checking share: @device loaded and its header checked into *@cd, the
 * volume key @passphrase unlocks into *@vk. The keyslot, or -errno with @err set.
 */
static int load_and_unlock(const char *device, const struct secret *passphrase,
                           struct crypt_log_capture *cap, struct crypt_device **cd,
                           struct secret **vk, struct skr_error *err)
{
	int r;

	luks_log_setup();
	r = check_passphrase_arg(passphrase, err);
	if (r < 0)
		return r;
	r = load_checked(device, cap, cd, err);
	if (r < 0)
		return r;
	return unlock_volume_key(*cd, device, passphrase, cap, vk, err);
}

int luks_check_passphrase(const char *device, const struct secret *passphrase,
                          struct skr_error *err)
{
	CRYPT_SESSION_SCOPE;
	_cleanup_(crypt_freep) struct crypt_device *cd = NULL;
	_cleanup_secret_ struct secret *vk = NULL;
	struct crypt_log_capture cap = {{0}};
	int r;

	r = load_and_unlock(device, passphrase, &cap, &cd, &vk, err);
	return r < 0 ? r : 0;
}

int luks_open(const char *device, const char *name, const struct secret *passphrase, bool read_only,
              char **dm_path, struct skr_error *err)
{
	CRYPT_SESSION_SCOPE;
	_cleanup_(crypt_freep) struct crypt_device *cd = NULL;
	_cleanup_secret_ struct secret *vk = NULL;
	struct crypt_log_capture cap = {{0}};
	_cleanup_free_ char *path = NULL;
	int r, slot;

	r = check_name(name, err);
	if (r < 0)
		return r;
	if (asprintf(&path, "/dev/mapper/%s", name) < 0) {
		path = NULL;
		return skr_error_set(err, -ENOMEM, "LUKS: out of memory");
	}
	slot = load_and_unlock(device, passphrase, &cap, &cd, &vk, err);
	if (slot < 0)
		return slot;
	/* For a regular file libcryptsetup attaches a loop device with autoclear: it goes away
	 * with the mapping. */
	r = crypt_activate_by_volume_key(cd, name, (const char *)vk->data, vk->len,
	                                 read_only ? CRYPT_ACTIVATE_READONLY : 0);
	if (r < 0)
		return skr_error_set(err, r, "LUKS: activating %s as %s failed: %s%s%s", device,
		                     path, skr_strerror(r), cap.last_error[0] ? ": " : "",
		                     cap.last_error);
	log_info("LUKS: %s opened as %s (keyslot %d, %s)", device, path, slot,
	         read_only ? "read-only" : "read-write");
	if (dm_path)
		*dm_path = TAKE_PTR(path);
	return 0;
}

int luks_close(const char *name, struct skr_error *err)
{
	struct crypt_log_capture cap = {{0}};
	int r;

	luks_log_setup();
	r = check_name(name, err);
	if (r < 0)
		return r;
	for (int attempt = 1;; attempt++) {
		CRYPT_SESSION_SCOPE; /* per attempt: not held while waiting between them */
		_cleanup_(crypt_freep) struct crypt_device *cd = NULL;

		r = crypt_init_by_name(&cd, name);
		if (r == -ENODEV)
			return skr_error_set(err, -ENODEV,
			                     "LUKS: no mapping /dev/mapper/%s to close", name);
		if (r < 0)
			return skr_error_set(err, r, "LUKS: cannot look up /dev/mapper/%s: %s",
			                     name, skr_strerror(r));
		crypt_set_log_callback(cd, crypt_log_to_ours, &cap);
		r = crypt_deactivate(cd, name);
		if (r != -EBUSY || attempt == CLOSE_ATTEMPTS)
			break;
		sleep_ms(CLOSE_DELAY_MS);
	}
	if (r < 0)
		return skr_error_set(err, r, "LUKS: closing /dev/mapper/%s failed: %s%s%s", name,
		                     r == -EBUSY ? "still in use (is it mounted?)"
		                                 : skr_strerror(r),
		                     cap.last_error[0] ? ": " : "", cap.last_error);
	log_info("LUKS: /dev/mapper/%s closed", name);
	return 0;
}
