/* SPDX-License-Identifier: MIT */
/*
 * generatefs_run(): the steps in order, writing into a temporary file beside the output that
 * is renamed over it only when everything succeeded, so a failure or an interruption never
 * leaves a half-made image under the output's name (the temporary file is removed).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cleanup.h"
#include "encfs.h"
#include "generatefs.h"
#include "log.h"

#define MIB ((uint64_t)1024 * 1024)
#define AUTO_SIZE_RETRIES 5
#define EXT4_LABEL_MAX 16

int generatefs_parse_size(const char *s, uint64_t *out)
{
	static const struct {
		const char *suffix;
		unsigned shift;
	} units[] = {
	        {"", 0},   {"K", 10},   {"KiB", 10}, {"M", 20}, {"MiB", 20}, {"G", 30}, {"GiB", 30},
	        {"T", 40}, {"TiB", 40}, {"k", 10},   {"m", 20}, {"g", 30},   {"t", 40},
	};
	char *end;
	unsigned long long v;

	if (!s || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	for (size_t i = 0; i < ELEMENTSOF(units); i++) {
		if (strcmp(end, units[i].suffix) != 0)
			continue;
		if (units[i].shift && v > (UINT64_MAX >> units[i].shift))
			return -EINVAL;
		*out = (uint64_t)v << units[i].shift;
		return 0;
	}
	return -EINVAL;
}

static bool uuid_valid(const char *u)
{
	if (strlen(u) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? u[i] != '-' : !isxdigit((unsigned char)u[i]))
			return false;
	}
	return true;
}

static int check_options(const struct generatefs_options *o, struct skr_error *err)
{
	if (!o->src_dir || !*o->src_dir)
		return skr_error_set(err, -EINVAL, "--dir is required");
	if (!o->out_path || !*o->out_path)
		return skr_error_set(err, -EINVAL, "--out is required");
	if (!o->key || o->key->len != GENERATEFS_KEY_SIZE)
		return skr_error_set(err, -EINVAL, "the key must be exactly %d bytes, got %zu",
		                     GENERATEFS_KEY_SIZE, o->key ? o->key->len : (size_t)0);
	if (o->sector_size != 0 && o->sector_size != 512 && o->sector_size != 4096)
		return skr_error_set(err, -EINVAL, "--sector-size %u: use 512 or 4096",
		                     o->sector_size);
	if (o->size && (o->size % MIB || o->size < GENERATEFS_DATA_OFFSET + GENERATEFS_MIN_FS_SIZE))
		return skr_error_set(
		        err, -EINVAL,
		        "--size %" PRIu64 ": must be a multiple of 1 MiB and at least %u "
		        "MiB (16 MiB LUKS2 header + %u MiB of ext4)",
		        o->size,
		        (unsigned)((GENERATEFS_DATA_OFFSET + GENERATEFS_MIN_FS_SIZE) >> 20),
		        GENERATEFS_MIN_FS_SIZE >> 20);
	if (o->label) {
		if (strlen(o->label) > EXT4_LABEL_MAX || !*o->label)
			return skr_error_set(err, -EINVAL,
			                     "--label '%s': 1 to %d bytes (ext4's limit)", o->label,
			                     EXT4_LABEL_MAX);
		for (const char *p = o->label; *p; p++)
			if (iscntrl((unsigned char)*p))
				return skr_error_set(err, -EINVAL,
				                     "--label: control characters are not allowed");
	}
	if (o->uuid && !uuid_valid(o->uuid))
		return skr_error_set(
		        err, -EINVAL,
		        "--uuid '%s': expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (hex)",
		        o->uuid);
	return 0;
}

/* Reproducible timestamps: $SOURCE_DATE_EPOCH (the reproducible-builds convention), else the
 * newest mtime in the tree. */
static int64_t fake_time_for(const struct generatefs_tree_stats *st)
{
	const char *sde = getenv("SOURCE_DATE_EPOCH");
	char *end;
	long long v;

	if (sde && *sde) {
		errno = 0;
		v = strtoll(sde, &end, 10);
		if (!errno && !*end && v >= 0)
			return v;
		log_warn("SOURCE_DATE_EPOCH='%s' is not a number of seconds: ignored", sde);
	}
	return st->newest_mtime > 0 ? st->newest_mtime : 0;
}

/* Reserve @size bytes up front so a full disk fails here, with a clear message, not halfway
 * through mke2fs or the encryption. */
static int reserve_space(int fd, const char *out, uint64_t size, struct skr_error *err)
{
	struct statvfs vfs;

	if (ftruncate(fd, 0) < 0)
		return skr_error_set(err, -errno, "%s: %s", out, skr_strerror(errno));
	if (fallocate(fd, 0, 0, (off_t)size) == 0)
		return 0;
	if (errno == ENOSPC || errno == EDQUOT || errno == EFBIG) {
		int e = errno;
		uint64_t avail =
		        fstatvfs(fd, &vfs) == 0 ? (uint64_t)vfs.f_bavail * vfs.f_frsize : 0;

		return skr_error_set(err, e == EFBIG ? -EFBIG : -ENOSPC,
		                     "out of disk space: %s needs %" PRIu64 " MiB, %" PRIu64
		                     " MiB available there",
		                     out, (size + MIB - 1) / MIB, avail / MIB);
	}
	if (errno != EOPNOTSUPP && errno != ENOSYS)
		return skr_error_set(err, -errno, "%s: reserving %" PRIu64 " bytes: %s", out, size,
		                     skr_strerror(errno));
	/* a filesystem without fallocate: a sparse file, write errors will report a full disk */
	if (ftruncate(fd, (off_t)size) < 0)
		return skr_error_set(err, -errno, "%s: %s", out, skr_strerror(errno));
	return 0;
}

struct temp_output {
	char *path;
	int fd;
};

static void temp_output_discard(struct temp_output *t)
{
	if (t->fd >= 0)
		close(t->fd);
	if (t->path) {
		if (unlink(t->path) < 0 && errno != ENOENT)
			log_warn("could not remove the partial image %s: %s", t->path,
			         skr_strerror(errno));
		free(t->path);
	}
	t->fd = -1;
	t->path = NULL;
}

static int temp_output_create(const char *out, bool force, struct temp_output *t,
                              struct skr_error *err)
{
	struct stat st;

	if (lstat(out, &st) == 0) {
		if (!force)
			return skr_error_set(
			        err, -EEXIST,
			        "--out %s exists: choose another name or add --force to "
			        "replace it",
			        out);
		if (S_ISDIR(st.st_mode))
			return skr_error_set(err, -EISDIR, "--out %s is a directory", out);
	} else if (errno != ENOENT) {
		return skr_error_set(err, -errno, "--out %s: %s", out, skr_strerror(errno));
	}
	if (asprintf(&t->path, "%s.tmp-XXXXXX", out) < 0) {
		t->path = NULL;
		return skr_error_set(err, -ENOMEM, "out of memory");
	}
	t->fd = mkostemp(t->path, O_CLOEXEC);
	if (t->fd < 0) {
		int e = errno;

		free(t->path);
		t->path = NULL;
		return skr_error_set(err, -e, "--out %s: cannot create a file beside it: %s", out,
		                     skr_strerror(e));
	}
	return 0;
}

/* Rename the finished image to @out (refusing to replace one that appeared meanwhile unless
 * forced) and make the rename durable. */
static int temp_output_commit(struct temp_output *t, const char *out, bool force,
                              struct skr_error *err)
{
	_cleanup_free_ char *dir_copy = strdup(out);
	_cleanup_close_ int dfd = -1;
	mode_t mask = umask(0);

	umask(mask);
	/* like any created file; the image holds only ciphertext and the keyslot */
	if (fchmod(t->fd, 0666 & ~mask) < 0)
		return skr_error_set(err, -errno, "chmod %s: %s", t->path, skr_strerror(errno));
	if (fsync(t->fd) < 0)
		return skr_error_set(err, -errno, "writing %s: %s", t->path, skr_strerror(errno));
	if (force ? rename(t->path, out) < 0
	          : renameat2(AT_FDCWD, t->path, AT_FDCWD, out, RENAME_NOREPLACE) < 0)
		return skr_error_set(err, errno == EEXIST ? -EEXIST : -errno, "--out %s: %s", out,
		                     errno == EEXIST ? "created by someone else meanwhile; add "
		                                       "--force to replace it"
		                                     : skr_strerror(errno));
	free(t->path);
	t->path = NULL; /* renamed: nothing to remove any more */
	close(t->fd);
	t->fd = -1;
	if (dir_copy) {
		dfd = open(dirname(dir_copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0)
			(void)fsync(dfd);
	}
	return 0;
}

static int check_cancel(const struct generatefs_options *o, struct skr_error *err)
{
	if (o->cancel && *o->cancel)
		return skr_error_set(err, -ECANCELED, "interrupted: the partial image was removed");
	return 0;
}

int generatefs_run(const struct generatefs_options *o, struct generatefs_result *res,
                   struct skr_error *err)
{
	struct temp_output tmp = {.fd = -1};
	_cleanup_secret_ struct secret *vk = NULL;
	struct generatefs_tree_stats st;
	uint64_t fs_size, inodes = 0, reserve;
	unsigned sector = o->sector_size ? o->sector_size : 4096;
	int64_t fake_time;
	int r;

	*res = (struct generatefs_result){.sector_size = sector,
	                                  .data_offset = GENERATEFS_DATA_OFFSET};
	r = check_options(o, err);
	if (r < 0)
		return r;
	r = generatefs_scan_tree(o->src_dir, &st, err);
	if (r < 0)
		return r;
	fake_time = o->uuid ? fake_time_for(&st) : -1;
	if (o->size) {
		fs_size = o->size - GENERATEFS_DATA_OFFSET;
	} else {
		fs_size = generatefs_auto_fs_size(&st);
		inodes = generatefs_auto_inodes(&st, fs_size);
		res->auto_sized = true;
	}
	log_debug("source: %" PRIu64 " inodes, %" PRIu64 " data blocks; ext4 %" PRIu64 " MiB",
	          st.inodes, st.data_blocks, fs_size / MIB);

	r = temp_output_create(o->out_path, o->force, &tmp, err);
	if (r < 0)
		return r;

	for (int attempt = 0;; attempt++) {
		reserve = GENERATEFS_DATA_OFFSET + fs_size;
		if (o->verity)
			reserve += verity_hash_area_size(reserve);
		r = reserve_space(tmp.fd, o->out_path, reserve, err);
		if (r < 0)
			goto fail;
		r = generatefs_mkfs(o->mke2fs, o->debugfs, tmp.path, GENERATEFS_DATA_OFFSET,
		                    fs_size, inodes, o->src_dir, o->label, o->uuid, fake_time, err);
		if (r != -EFBIG || !res->auto_sized || attempt == AUTO_SIZE_RETRIES)
			break;
		/* the estimate was short (mke2fs knows best): grow by a quarter and retry */
		log_info("%s does not fit in %" PRIu64 " MiB of ext4: retrying with more",
		         o->src_dir, fs_size / MIB);
		skr_error_clear(err);
		fs_size = (fs_size + fs_size / 4 + MIB - 1) / MIB * MIB;
		inodes = inodes ? inodes + inodes / 4 : generatefs_auto_inodes(&st, fs_size);
	}
	if (r == -EFBIG && !res->auto_sized) {
		skr_error_reset(err, -EFBIG,
		                "%s needs more than --size %" PRIu64 " MiB: use a larger --size or "
		                "--auto-size",
		                o->src_dir, o->size / MIB);
		goto fail;
	}
	if (r < 0 || (r = check_cancel(o, err)) < 0)
		goto fail;

	res->fs_size = fs_size;
	res->luks_size = GENERATEFS_DATA_OFFSET + fs_size;
	r = generatefs_luks_format(tmp.path, o->key, sector, o->uuid, o->label, &vk, res->luks_uuid,
	                           err);
	if (r < 0)
		goto fail;
	r = generatefs_xts_fd(tmp.fd, GENERATEFS_DATA_OFFSET, fs_size, vk, sector, true, o->threads,
	                      o->cancel, o->progress, o->progress_userdata, err);
	secret_free(TAKE_PTR(vk)); /* not needed past this point */
	if (r < 0)
		goto fail;
	if ((r = check_cancel(o, err)) < 0)
		goto fail;

	if (o->verity) {
		/* the tree is built from the file, through the page cache: no fsync needed first */
		r = verity_format(tmp.path, res->luks_size, NULL, res->verity_root_hash, err);
		if (r < 0)
			goto fail;
		res->verity = true;
		res->verity_hash_offset = res->luks_size;
	}
	res->image_size = res->luks_size + (o->verity ? verity_hash_area_size(res->luks_size) : 0);
	if ((r = check_cancel(o, err)) < 0)
		goto fail;
	r = temp_output_commit(&tmp, o->out_path, o->force, err);
	if (r < 0)
		goto fail;
	return 0;

fail:
	temp_output_discard(&tmp);
	return r;
}
