/* SPDX-License-Identifier: MIT */
/*
 * generatefs: an ext4 filesystem holding a directory tree, encrypted as LUKS2 aes-xts-plain64
 * entirely in userspace (no root, no device-mapper, no loop device), optionally followed by a
 * dm-verity hash tree. The tool's library: main.c parses flags and prints, this does the work.
 *
 * Image layout (the Go tool's generatefs.sh makes the same LUKS parameters, protocols.md §7.3):
 *   [0, 16 MiB)          LUKS2 header (libcryptsetup), pbkdf2-sha256 keyslot, 512-bit key
 *   [16 MiB, luks_size)  ext4 (mke2fs -d, 4096-byte blocks), encrypted as dm-crypt would
 *   [luks_size, end)     with verity: superblock + hash tree over [0, luks_size) (encfs.h)
 */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "secret.h"
#include "skr_error.h"

#define GENERATEFS_KEY_SIZE 32                     /* the keyslot passphrase: a random key */
#define GENERATEFS_VOLUME_KEY_SIZE 64              /* aes-256-xts: two 256-bit keys */
#define GENERATEFS_DATA_OFFSET (16u * 1024 * 1024) /* cryptsetup's default LUKS2 data offset */
#define GENERATEFS_PBKDF2_ITERATIONS 1000          /* libcryptsetup's minimum; see --help */
#define GENERATEFS_MIN_FS_SIZE (8u * 1024 * 1024)  /* smallest ext4 with a journal */

/* Called from the calling thread about twice a second while the data area is encrypted. */
typedef void (*generatefs_progress_fn)(void *userdata, uint64_t done, uint64_t total);

struct generatefs_options {
	/* required: the tree to copy (owners, modes, symlinks, hard links, xattrs) */
	const char *src_dir;
	/* required: the image to create */
	const char *out_path;
	/* required: exactly 32 bytes, the keyslot passphrase */
	const struct secret *key;
	/* LUKS image bytes (header + ext4), a multiple of 1 MiB; 0 = sized from the tree */
	uint64_t size;
	/* encryption sector: 512 or 4096; 0 = 4096 */
	unsigned sector_size;
	/* ext4 volume label (at most 16 bytes), also the LUKS label; NULL = none */
	const char *label;
	/* LUKS UUID, also the ext4 UUID and directory hash seed; with it the run is
	 * reproducible (see generatefs_run); NULL = random */
	const char *uuid;
	/* append a dm-verity hash tree over the LUKS image */
	bool verity;
	/* replace an existing @out_path */
	bool force;
	/* encryption threads; 0 = one per online CPU */
	unsigned threads;
	/* e2fsprogs binaries; NULL = "mke2fs" / "debugfs" from PATH */
	const char *mke2fs;
	const char *debugfs;
	/* NULL = no progress */
	generatefs_progress_fn progress;
	void *progress_userdata;
	/* set (by a signal handler) to stop early: the run fails with -ECANCELED and removes
	 * the partial image; NULL = not cancellable */
	const volatile sig_atomic_t *cancel;
};

struct generatefs_result {
	uint64_t image_size;  /* bytes of the output file */
	uint64_t luks_size;   /* LUKS header + data area (= verity data size) */
	uint64_t data_offset; /* bytes, start of the encrypted ext4 */
	uint64_t fs_size;     /* bytes of the ext4 filesystem */
	unsigned sector_size;
	bool auto_sized;
	char luks_uuid[37];
	bool verity;
	char verity_root_hash[65];
	uint64_t verity_hash_offset; /* = luks_size */
};

/*
 * Make the image. Steps: scan @src_dir (size, newest mtime) → create @out_path (O_EXCL unless
 * force, preallocated so a full disk fails up front) → mke2fs -d into the data area → LUKS2
 * header → encrypt the data area in place with parallel threads → verity → fsync.
 * On any failure the partial output is removed; nothing but the output file is written (no
 * plaintext temporary file).
 *
 * Errors: -ENOENT/-ENOTDIR src missing, -EEXIST output exists, -EINVAL bad option, -EFBIG the
 * tree does not fit in @size, -ENOSPC the disk is full, others runtime; the reason in @err.
 *
 * Reproducible with @uuid: the ext4 bytes (timestamps from $SOURCE_DATE_EPOCH, else the newest
 * mtime of the tree), the LUKS UUID and all LUKS2 JSON metadata except the keyslot and digest
 * salts and the digest. Never the same: the volume key (random, so the ciphertext differs), the
 * salts, the verity salt.
 */
int generatefs_run(const struct generatefs_options *o, struct generatefs_result *res,
                   struct skr_error *err);

/* What a directory tree needs, for --auto-size. */
struct generatefs_tree_stats {
	uint64_t inodes; /* entries including the root */
	uint64_t
	        data_blocks; /* 4096-byte blocks of file data, directories, long symlinks, xattrs */
	int64_t newest_mtime; /* seconds */
};

/* Walk @dir without following symlinks. -ENOENT/-ENOTDIR when it is not a directory. */
int generatefs_scan_tree(const char *dir, struct generatefs_tree_stats *st, struct skr_error *err);

/* ext4 bytes (a multiple of 1 MiB) that hold a tree with @st: data, inode tables, journal and
 * group metadata with a margin. generatefs_run() grows it and retries if mke2fs disagrees. */
uint64_t generatefs_auto_fs_size(const struct generatefs_tree_stats *st);

/* The inode count to ask mke2fs for (-N) when its default for @fs_size is too small for the
 * tree (many small files), else 0. */
uint64_t generatefs_auto_inodes(const struct generatefs_tree_stats *st, uint64_t fs_size);

/* Parse "N", "NK", "NM", "NG", "NT" (binary multiples; also KiB/MiB/GiB/TiB). 0 or -EINVAL. */
int generatefs_parse_size(const char *s, uint64_t *out);

/*
 * Encrypt (or decrypt) @len bytes of @buf in place as dm-crypt aes-xts-plain64 does for LUKS2:
 * one XTS operation per @sector_size bytes, the tweak the little-endian 64-bit number of the
 * sector counted in 512-byte units from the start of the data segment — also for 4096-byte
 * sectors (LUKS2 never sets iv_large_sectors). @first_sector512 is that number for buf[0].
 * @volume_key: 64 bytes. @len a multiple of @sector_size.
 */
int generatefs_xts_buffer(const struct secret *volume_key, unsigned sector_size,
                          uint64_t first_sector512, uint8_t *buf, size_t len, bool encrypt,
                          struct skr_error *err);

/*
 * generatefs_xts_buffer() over [@data_offset, @data_offset + @len) of @fd, in place, with
 * @threads threads (0 = one per CPU) working on large chunks; sector numbers count from
 * @data_offset. @progress and @cancel may be NULL; a set *@cancel stops with -ECANCELED.
 */
int generatefs_xts_fd(int fd, uint64_t data_offset, uint64_t len, const struct secret *volume_key,
                      unsigned sector_size, bool encrypt, unsigned threads,
                      const volatile sig_atomic_t *cancel, generatefs_progress_fn progress,
                      void *userdata, struct skr_error *err);

/*
 * Write a LUKS2 header to @path (a file at least GENERATEFS_DATA_OFFSET + 1 MiB long, its data
 * area left untouched): aes-xts-plain64, 512-bit random volume key, @sector_size, data offset
 * 16 MiB, one keyslot pbkdf2-sha256 with GENERATEFS_PBKDF2_ITERATIONS opened by @passphrase.
 * The volume key comes back in *@volume_key (read back through the keyslot, so the keyslot is
 * known to work) and the UUID in @uuid_out.
 */
int generatefs_luks_format(const char *path, const struct secret *passphrase, unsigned sector_size,
                           const char *uuid, const char *label, struct secret **volume_key,
                           char uuid_out[37], struct skr_error *err);

/*
 * mke2fs -t ext4 -b 4096 -d @src into @path at byte @offset, @fs_size bytes (@inodes > 0: that
 * many inodes); owner and mode of the root directory from @src. @uuid: filesystem UUID and
 * directory hash seed. @fake_time ≥ 0: E2FSPROGS_FAKE_TIME for reproducible timestamps.
 * -EFBIG when the tree does not fit, the reason in @err.
 */
int generatefs_mkfs(const char *mke2fs, const char *debugfs, const char *path, uint64_t offset,
                    uint64_t fs_size, uint64_t inodes, const char *src, const char *label,
                    const char *uuid, int64_t fake_time, struct skr_error *err);
