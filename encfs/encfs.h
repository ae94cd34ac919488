/* SPDX-License-Identifier: MIT */
/*
 * libencfs: the encrypted remote filesystem half of the sidecar (protocols.md §6.3, §7.3).
 *
 *   blob        one reader/writer over Azure Blob, generic HTTP(S) with Range, or file://
 *   block cache LRU blocks over a blob, read-ahead (one streamed range request of a sequential
 *               reader, or parallel runs), write-back
 *   blob fuse   the blob as a local file (lazy: only the blocks read are fetched)
 *   download    the whole blob to a local file (for environments without FUSE)
 *   luks        LUKS2 header allowlist (the header comes from untrusted storage), open from memory
 *   verity      the dm-verity layout generatefs writes, format and open
 *   mount       ext4 through libmount, atomic publication as a symlink, teardown, stale cleanup
 *   filesystem  the pipeline for one EncfsSideCarArgs entry: blob → key → verity → LUKS → mount
 *
 * This header is the whole contract; everything else in encfs/ is private. Conventions as in
 * skr.h: 0 or a negative errno, the reason in struct skr_error naming the step and the fix,
 * secrets in struct secret (locked memory) and never in errors or logs.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "secret.h"
#include "skr_error.h"

/* ---------------------------------------------------------------------------------------------
 * Blob access (§6.3)
 * ------------------------------------------------------------------------------------------- */

enum blob_kind {
	BLOB_KIND_AZURE = 0, /* https://<account>.blob.<suffix>/<container>/<blob>[?SAS], or any URL
	                        with a SAS query (sv= and sig=) or given with a bearer token */
	BLOB_KIND_HTTP,      /* any other http(s) URL: HEAD for the size, Range GETs (a HEAD
	                        answer with x-ms-blob-type, e.g. Azurite's, makes it AZURE) */
	BLOB_KIND_FILE,      /* file:///absolute/path */
};

/*
 * Supplies a bearer token for Azure Blob (azure_url_private). @resource is the audience to ask
 * for ("https://<account host>", as the Go sidecar does). The callee caches; the blob code calls
 * it before each request batch and again once after a 401/403 (token expired).
 */
typedef int (*blob_token_fn)(void *userdata, const char *resource, struct secret **token,
                             struct skr_error *err);

struct blob_options {
	const char *url;        /* required; the SAS query, if any, is part of it (a secret) */
	const char *ca_bundle;  /* PEM bundle for https; NULL = system store */
	blob_token_fn token_fn; /* non-NULL → "Authorization: Bearer" (Azure; refused over http) */
	void *token_userdata;
	unsigned timeout_ms;     /* per request; 0 = 30000 */
	unsigned max_attempts;   /* per read/write; 0 = 6 */
	unsigned backoff_ms;     /* first retry delay, doubled each time; 0 = 100 */
	unsigned max_backoff_ms; /* cap; 0 = 5000 (a Retry-After above it is capped too) */
	bool writable;           /* Put Page allowed: requires an Azure page blob or a file */
};

struct blob_properties {
	enum blob_kind kind;
	uint64_t size;
	char etag[128]; /* "" when the server sends none */
	bool page_blob; /* x-ms-blob-type: PageBlob */
};

struct blob;

/* HEAD / Get Blob Properties (or stat for file://). Errors name the URL without its SAS. */
int blob_open(const struct blob_options *o, struct blob **out, struct skr_error *err);
const struct blob_properties *blob_get_properties(const struct blob *b);
/* The URL for logs and errors: query parameter values that are secrets (sig) → "REDACTED". */
const char *blob_display_url(const struct blob *b);

/*
 * Read exactly @len bytes at @off (off + len ≤ size, else -EINVAL). Thread-safe; concurrent
 * calls run concurrently. Each GET sends If-Match with the ETag seen at open: a blob that changed
 * under us fails with -ESTALE, never mixed bytes. Connection drops, 5xx, 429/503 (honouring
 * Retry-After, capped), and short bodies are retried with bounded backoff; when the attempts are
 * spent: -EIO (or -ESTALE/-EACCES/-ENOENT when that is the cause) and the reason in @err.
 */
int blob_read(struct blob *b, void *buf, size_t len, uint64_t off, struct skr_error *err);

/* Put Page: @off and @len multiples of 512, at most 4 MiB per call (split by the caller).
 * Only when opened writable. Updates the ETag expected by later reads. */
int blob_write(struct blob *b, const void *buf, size_t len, uint64_t off, struct skr_error *err);

void blob_close(struct blob *b);

/*
 * Create (or replace, with @overwrite) a page blob of @size bytes (a multiple of 512) at @o->url
 * and fill it from @fd (pread) with @parallel concurrent Put Page calls of 4 MiB; all-zero
 * chunks are skipped (a new page blob reads as zeros). For file:// URLs, copies. generatefs
 * --upload.
 */
int blob_upload_page_blob(const struct blob_options *o, int fd, uint64_t size, unsigned parallel,
                          bool overwrite, struct skr_error *err);

/* @url with secret query values (sig, and the whole query when unsure) replaced; malloc'ed. */
char *blob_url_redact(const char *url);

/* ---------------------------------------------------------------------------------------------
 * Block cache
 * ------------------------------------------------------------------------------------------- */

struct block_cache_options {
	size_t block_size;      /* bytes, a power of two ≥ 4096; 0 = 512 KiB (the Go default) */
	size_t capacity_blocks; /* LRU capacity; 0 = 64 */
	/* After a sequential pattern; 0 = 32, capped by capacity / 2. Read-only caches over HTTP(S)
	 * fetch them with one long request, paused while this many blocks wait unread. */
	unsigned readahead_blocks;
	unsigned fetch_threads; /* parallel range requests (misses, other read-ahead); 0 = 4 */
};

struct block_cache_stats {
	uint64_t hits, misses, readahead_blocks, fetched_bytes, written_back_bytes, evictions;
};

struct block_cache;

/* @b stays owned by the caller and must outlive the cache. */
int block_cache_new(struct blob *b, const struct block_cache_options *o, struct block_cache **out,
                    struct skr_error *err);
uint64_t block_cache_size(const struct block_cache *c);
/* Returns the number of bytes read (short only at the end of the blob) or a negative errno. */
ssize_t block_cache_read(struct block_cache *c, void *buf, size_t len, uint64_t off,
                         struct skr_error *err);
/* Writes into cached blocks (fetching partial blocks first); dirty blocks are written back on
 * eviction and by block_cache_flush(). -EROFS unless the blob is writable. */
ssize_t block_cache_write(struct block_cache *c, const void *buf, size_t len, uint64_t off,
                          struct skr_error *err);
int block_cache_flush(struct block_cache *c, struct skr_error *err);
void block_cache_get_stats(struct block_cache *c, struct block_cache_stats *out);
/* Does not flush: call block_cache_flush() first when writes must persist. */
void block_cache_free(struct block_cache *c);

/* ---------------------------------------------------------------------------------------------
 * The blob as a local file
 * ------------------------------------------------------------------------------------------- */

struct blob_fuse;

/*
 * Mount a FUSE filesystem at @dir (created if missing, must be empty) holding one regular file
 * "data" whose bytes are the cache's; served by threads of this process until unmounted.
 * Read-only unless @writable. Needs /dev/fuse and CAP_SYS_ADMIN (or fusermount3).
 */
int blob_fuse_mount(struct block_cache *c, const char *dir, bool writable, struct blob_fuse **out,
                    struct skr_error *err);
/* "<dir>/data" */
const char *blob_fuse_file(const struct blob_fuse *f);
/* Flush (if writable), unmount (lazy after a bounded wait), join threads, free. */
int blob_fuse_unmount(struct blob_fuse *f, struct skr_error *err);

/* Fetch the whole blob to @path (created 0600, O_EXCL; removed on failure) with @parallel range
 * requests, then check the size. */
int blob_download(struct blob *b, const char *path, unsigned parallel, struct skr_error *err);

/* ---------------------------------------------------------------------------------------------
 * LUKS2
 * ------------------------------------------------------------------------------------------- */

/*
 * The allowlist applied to a header from untrusted storage before any activation: LUKS2; both
 * binary headers valid and their JSON metadata equal; exactly one segment, type crypt, cipher
 * aes-xts-plain64, 512-bit key, sector size 512 or 4096, iv_tweak 0, no integrity; keyslots of
 * type luks2 with area encryption aes-xts-plain64 and pbkdf2/argon2i/argon2id KDFs (no
 * cipher_null anywhere); digests pbkdf2; no tokens; no reencryption state or requirements.
 * -EMEDIUMTYPE "not a LUKS2 image" when the magic is absent; -EBADMSG naming the offending field
 * otherwise.
 */
int luks_header_check_file(const char *path, struct skr_error *err);
/* The same over the first @len bytes of an image (at least both headers). For the fuzzer. */
int luks_header_check_buffer(const uint8_t *buf, size_t len, struct skr_error *err);

/*
 * Activate @device (a file or block device; a loop device is attached automatically) as
 * /dev/mapper/@name with @passphrase (the released key, from memory — never a key file).
 * -EPERM with "wrong key (fingerprint …)" when no keyslot accepts it. *@dm_path malloc'ed.
 */
int luks_open(const char *device, const char *name, const struct secret *passphrase, bool read_only,
              char **dm_path, struct skr_error *err);
int luks_close(const char *name, struct skr_error *err);

/* ---------------------------------------------------------------------------------------------
 * dm-verity over a whole LUKS image (generatefs --read-only-verity)
 *
 * Layout: [LUKS image: data_size bytes][verity superblock + hash tree], sha256, 4096-byte data
 * and hash blocks, hash area at offset data_size. The tree covers the LUKS header too, so a
 * pinned root hash also pins the header.
 * ------------------------------------------------------------------------------------------- */

/* Bytes of the hash area (superblock + tree) for @data_size (a multiple of 4096). */
uint64_t verity_hash_area_size(uint64_t data_size);
/* The inverse for a blob of @total bytes: the data size whose layout fills it exactly, or
 * -EINVAL when no layout does (not a verity image of ours). */
int verity_layout_from_total(uint64_t total, uint64_t *data_size, struct skr_error *err);
/* Write the hash area into @path at @data_size; root hash as 64 hex + NUL. @salt_hex NULL =
 * random salt (pass one for reproducible images). */
int verity_format(const char *path, uint64_t data_size, const char *salt_hex, char root_hash[65],
                  struct skr_error *err);
/* Activate /dev/mapper/@name (read-only) checking every read against @root_hash (hex). With
 * @name NULL: hash the whole image in userspace against @root_hash and activate nothing
 * (`veritysetup verify`; works without device-mapper). -EBADMSG when the image does not match. */
int verity_open(const char *path, const char *name, const char *root_hash, char **dm_path,
                struct skr_error *err);
int verity_close(const char *name, struct skr_error *err);

/* ---------------------------------------------------------------------------------------------
 * Mounting and publication
 * ------------------------------------------------------------------------------------------- */

/*
 * Paths here are resolved without following symlinks (the parent of a mount point is often
 * writable by the app, and this runs as root): a symlink at @target, @mount_point or any
 * component of their parents is refused with -ELOOP naming it; nothing is made, mounted or
 * removed behind one. "/proc" must be mounted.
 */
/* ext4 @device at @target (created 0755): read-only → "ro,noload"; nosuid,nodev always. */
int encfs_mount_ext4(const char *device, const char *target, bool read_write,
                     struct skr_error *err);
/* Make @mount_point a symlink to @target (relative when siblings) atomically: a temporary
 * symlink renamed over it. An existing non-empty directory at @mount_point is refused. */
int encfs_publish(const char *target, const char *mount_point, struct skr_error *err);
/* Remove the symlink, then unmount @target (lazy after a bounded wait) and rmdir it. */
int encfs_unpublish(const char *target, const char *mount_point, struct skr_error *err);

/*
 * After a crash: unmount every mount below @work_dir and every hidden mount
 * "<parent>/.filesystem-*" of @mount_points, close every device-mapper mapping whose name starts
 * with @dm_prefix (verity below crypt: crypt first), detach loop devices they used, remove
 * downloads "<work_dir>/<index>/image" and empty "<work_dir>/<index>" directories. A parent
 * reached through a symlink is skipped with a warning. Reports what it cleaned at info level.
 */
int encfs_cleanup_stale(const char *work_dir, const char *dm_prefix,
                        const char *const *mount_points, size_t n, struct skr_error *err);

/* ---------------------------------------------------------------------------------------------
 * One filesystem: the whole pipeline
 * ------------------------------------------------------------------------------------------- */

enum encfs_step {
	ENCFS_STEP_BLOB = 0, /* "blob": open/expose the remote image */
	ENCFS_STEP_ATTEST,   /* "attest" */
	ENCFS_STEP_RELEASE,  /* "release": key vault refused for another reason than policy */
	ENCFS_STEP_POLICY,   /* "policy denied" */
	ENCFS_STEP_KEY,      /* "wrong key": no keyslot accepts the derived key */
	ENCFS_STEP_HEADER,   /* "not LUKS" / header refused by the allowlist */
	ENCFS_STEP_VERITY,   /* "verity" */
	ENCFS_STEP_MOUNT,    /* "mount" */
};
const char *encfs_step_name(enum encfs_step s);

/*
 * Obtains the 32-byte LUKS passphrase for a filesystem (secure key release + HKDF for RSA keys,
 * or raw_key in test builds). Returns 0, or a negative errno with *@step set to ATTEST, RELEASE
 * or POLICY and the reason in @err.
 */
typedef int (*encfs_key_fn)(void *userdata, struct secret **passphrase, enum encfs_step *step,
                            struct skr_error *err);

enum encfs_access {
	ENCFS_ACCESS_FUSE = 0, /* lazy */
	ENCFS_ACCESS_DOWNLOAD,
};

struct encfs_fs_config {
	unsigned index;          /* position in azure_filesystems: names mappings and dirs */
	const char *mount_point; /* where the app looks (a symlink is published there) */
	bool read_write;
	const char *verity_root_hash; /* NULL or hex */
	enum encfs_access access;
	struct blob_options blob;
	struct block_cache_options cache;
	const char *work_dir;  /* FUSE mounts and downloads: <work_dir>/<index>/ */
	const char *dm_prefix; /* mapping names: <prefix><index>-crypt, <prefix><index>-verity */
	encfs_key_fn key_fn;
	void *key_userdata;
	/* Set by another thread to stop a pipeline still running (shutdown): checked between
	 * steps; what was done is undone and encfs_fs_mount() fails with -ECANCELED. NULL:
	 * never cancelled. */
	const atomic_bool *cancel;
};

struct encfs_fs;

/*
 * Run the pipeline: blob → key → (verity) → header allowlist → LUKS open → mount at
 * "<dirname(mount_point)>/.filesystem-<index>" → publish. On failure everything done so far is
 * undone (no mapping, mount, FUSE mount or download left), *@failed_step names the step and
 * @err the reason; a wrong key's error carries the derived key's fingerprint.
 */
int encfs_fs_mount(const struct encfs_fs_config *cfg, struct encfs_fs **out,
                   enum encfs_step *failed_step, struct skr_error *err);
/* Reverse order: unpublish, unmount, close LUKS, close verity, unmount FUSE (flushing writes),
 * within @timeout_ms in total. Frees @fs. */
int encfs_fs_unmount(struct encfs_fs *fs, unsigned timeout_ms, struct skr_error *err);
