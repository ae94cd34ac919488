/* SPDX-License-Identifier: MIT */
/*
 * The ext4 half: measure the source tree (for --auto-size) and run mke2fs -d, which copies a
 * tree with owners, modes, symlinks, hard links, device nodes and xattrs into a new filesystem
 * without mounting anything. It writes straight into the output file's data area
 * (-E offset=16 MiB), so no plaintext copy of the filesystem ever exists elsewhere.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cleanup.h"
#include "generatefs.h"
#include "log.h"

extern char **environ;

DEFINE_CLEANUP_FUNC(DIR *, closedir)

#define BLOCK 4096u
#define MIB (1024u * 1024u)
#define OUTPUT_MAX (64u * 1024u)
#define INODE_SIZE 256u        /* mke2fs.conf default for ext4 */
#define XATTR_INLINE_SPACE 96u /* what a 256-byte inode keeps for in-inode xattrs, roughly */

/* ---------------------------------------------------------------------------------------------
 * The tree
 * ------------------------------------------------------------------------------------------- */

static uint64_t blocks_of(uint64_t bytes)
{
	return (bytes + BLOCK - 1) / BLOCK;
}

/* Bytes the xattrs of @path take, with ext4's per-entry overhead (name and value padded to
 * 4 bytes, a 16-byte entry header). */
static uint64_t xattr_bytes(const char *path)
{
	char names[16384];
	ssize_t n = llistxattr(path, names, sizeof(names));
	uint64_t total = 0;

	if (n <= 0)
		return n < 0 && errno == ERANGE ? 2 * BLOCK : 0; /* a huge list: count generously */
	for (ssize_t i = 0; i < n;) {
		size_t nl = strnlen(names + i, (size_t)(n - i));
		ssize_t vl = lgetxattr(path, names + i, NULL, 0);

		total += 16 + ((nl + 3) & ~(size_t)3) + (vl > 0 ? (((uint64_t)vl + 3) & ~3ull) : 0);
		i += (ssize_t)nl + 1;
	}
	return total;
}

static int scan_dir(const char *path, int depth, struct generatefs_tree_stats *st,
                    struct skr_error *err)
{
	_cleanup_(closedirp) DIR *d = NULL;
	uint64_t dirent_bytes = 24; /* "." and ".." */
	struct dirent *e;

	if (depth > 4096)
		return skr_error_set(err, -ELOOP, "--dir: %s: directories nested too deep", path);
	d = opendir(path);
	if (!d)
		return skr_error_set(err, -errno, "--dir: cannot read %s: %s", path,
		                     skr_strerror(errno));
	for (errno = 0; (e = readdir(d)); errno = 0) {
		_cleanup_free_ char *child = NULL;
		struct stat s;
		uint64_t xb;
		size_t nl = strlen(e->d_name);
		int r;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (asprintf(&child, "%s/%s", path, e->d_name) < 0) {
			child = NULL;
			return skr_error_set(err, -ENOMEM, "--dir: out of memory");
		}
		if (lstat(child, &s) < 0)
			return skr_error_set(err, -errno, "--dir: cannot stat %s: %s", child,
			                     skr_strerror(errno));
		dirent_bytes += 8 + ((nl + 3) & ~(size_t)3);
		st->inodes++;
		if (s.st_mtime > st->newest_mtime)
			st->newest_mtime = s.st_mtime;
		xb = xattr_bytes(child);
		if (xb > XATTR_INLINE_SPACE)
			st->data_blocks += blocks_of(xb);
		if (S_ISREG(s.st_mode)) {
			uint64_t b = blocks_of((uint64_t)s.st_size);

			/* extent tree blocks: one per ~340 extents, assume 1 extent per 32 MiB */
			st->data_blocks += b + b / (340 * 8192) + (b > 4 ? 1 : 0);
		} else if (S_ISLNK(s.st_mode)) {
			if (s.st_size >= 60) /* shorter targets live in the inode */
				st->data_blocks++;
		} else if (S_ISDIR(s.st_mode)) {
			r = scan_dir(child, depth + 1, st, err);
			if (r < 0)
				return r;
		}
	}
	if (errno)
		return skr_error_set(err, -errno, "--dir: reading %s: %s", path,
		                     skr_strerror(errno));
	/* the directory's own blocks, plus htree index blocks for large ones */
	uint64_t db = blocks_of(dirent_bytes);
	st->data_blocks += db + (db > 1 ? 1 + db / 500 : 0);
	return 0;
}

int generatefs_scan_tree(const char *dir, struct generatefs_tree_stats *st, struct skr_error *err)
{
	struct stat s;

	*st = (struct generatefs_tree_stats){0};
	if (stat(dir, &s) < 0)
		return skr_error_set(err, -errno, "--dir %s: %s", dir, skr_strerror(errno));
	if (!S_ISDIR(s.st_mode))
		return skr_error_set(err, -ENOTDIR, "--dir %s: not a directory", dir);
	st->inodes = 1;
	st->newest_mtime = s.st_mtime;
	if (xattr_bytes(dir) > XATTR_INLINE_SPACE)
		st->data_blocks += blocks_of(xattr_bytes(dir));
	return scan_dir(dir, 0, st, err);
}

/* ext2fs_default_journal_size() of e2fsprogs 1.47, in blocks. */
static uint64_t journal_blocks(uint64_t fs_blocks)
{
	if (fs_blocks < 2048)
		return 0;
	if (fs_blocks < 32768)
		return 1024;
	if (fs_blocks < 256 * 1024)
		return 4096;
	if (fs_blocks < 512 * 1024)
		return 8192;
	if (fs_blocks < 4096 * 1024)
		return 16384;
	if (fs_blocks < 8192 * 1024)
		return 32768;
	if (fs_blocks < 16384 * 1024)
		return 65536;
	if (fs_blocks < 32768 * 1024)
		return 131072;
	return 262144;
}

/* mke2fs.conf's bytes per inode: "small" below 512 MiB, "default" up to 4 TiB. */
static uint64_t inode_ratio(uint64_t fs_bytes)
{
	return fs_bytes < 512ull * MIB ? 4096 : 16384;
}

uint64_t generatefs_auto_fs_size(const struct generatefs_tree_stats *st)
{
	/* data with 10 % slack (fragmentation, what the estimate misses), reserved inodes */
	uint64_t data = st->data_blocks * BLOCK + st->data_blocks * BLOCK / 10;
	uint64_t inodes = st->inodes + 16;
	uint64_t size = data + GENERATEFS_MIN_FS_SIZE;

	/* the overheads depend on the size: iterate to a fixed point (converges in a few steps) */
	for (int i = 0; i < 8; i++) {
		uint64_t ratio = inode_ratio(size), itable = size / ratio * INODE_SIZE;
		uint64_t need_itable = inodes * INODE_SIZE;
		uint64_t next = data + (itable > need_itable ? itable : need_itable) +
		                journal_blocks(size / BLOCK) * BLOCK +
		                size / 128 /* bitmaps, descriptors, reserved GDT blocks */ +
		                size / 20 /* the 5 % reserved for root, so a rw mount has room */ +
		                2 * MIB;

		next = (next + MIB - 1) / MIB * MIB;
		if (next == size)
			break;
		size = next;
	}
	if (size < GENERATEFS_MIN_FS_SIZE)
		size = GENERATEFS_MIN_FS_SIZE;
	return (size + MIB - 1) / MIB * MIB;
}

uint64_t generatefs_auto_inodes(const struct generatefs_tree_stats *st, uint64_t fs_size)
{
	uint64_t need = st->inodes + st->inodes / 10 + 64;

	return fs_size / inode_ratio(fs_size) >= need ? 0 : need;
}

/* ---------------------------------------------------------------------------------------------
 * Running e2fsprogs
 * ------------------------------------------------------------------------------------------- */

/* Run @argv with stdin /dev/null and stdout+stderr captured into *@out (NUL-terminated,
 * truncated at OUTPUT_MAX). Returns the exit status (≥ 0) or a negative errno. */
static int run_capture(const char *const *argv, const char *const *extra_env, char **out)
{
	_cleanup_free_ char *buf = NULL;
	_cleanup_free_ char **envp = NULL;
	posix_spawn_file_actions_t fa;
	int pipefd[2], status, r;
	size_t len = 0, n_env = 0, n_extra = 0;
	pid_t pid;

	*out = NULL;
	buf = calloc(1, OUTPUT_MAX + 1);
	if (!buf)
		return -ENOMEM;
	while (environ[n_env])
		n_env++;
	while (extra_env && extra_env[n_extra])
		n_extra++;
	envp = calloc(n_env + n_extra + 1, sizeof(*envp));
	if (!envp)
		return -ENOMEM;
	memcpy(envp, environ, n_env * sizeof(*envp));
	for (size_t i = 0; i < n_extra; i++)
		envp[n_env + i] = (char *)extra_env[i];

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	r = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (r != 0) {
		close(pipefd[0]);
		return -r;
	}
	for (;;) {
		char tmp[4096];
		ssize_t k = read(pipefd[0], tmp, sizeof(tmp));

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		if (len < OUTPUT_MAX) {
			size_t take = (size_t)k < OUTPUT_MAX - len ? (size_t)k : OUTPUT_MAX - len;

			memcpy(buf + len, tmp, take);
			len += take;
		}
	}
	close(pipefd[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	*out = TAKE_PTR(buf);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* The last non-empty line of @text (in place), for a one-line error. */
static const char *last_line(char *text)
{
	char *end, *start;

	if (!text)
		return "";
	end = text + strlen(text);
	while (end > text && (end[-1] == '\n' || end[-1] == ' '))
		*--end = '\0';
	start = strrchr(text, '\n');
	return start ? start + 1 : text;
}

/* e2fsprogs prints its version banner on stderr; anything else from debugfs is a failure. */
static bool only_banner(const char *text)
{
	for (const char *p = text; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);

		if (n > 0 && strncmp(p, "debugfs ", 8) != 0)
			return false;
		p = nl ? nl + 1 : NULL;
	}
	return true;
}

int generatefs_mkfs(const char *mke2fs, const char *debugfs, const char *path, uint64_t offset,
                    uint64_t fs_size, uint64_t inodes, const char *src, const char *label,
                    const char *uuid, int64_t fake_time, struct skr_error *err)
{
	_cleanup_free_ char *out = NULL, *ext = NULL, *device = NULL;
	char blocks[32], inodes_s[32], time_env[64], mode_cmd[64];
	const char *argv[32];
	const char *env[2] = {NULL, NULL};
	struct stat root;
	size_t n = 0;
	int r;

	if (fs_size % BLOCK || offset % BLOCK)
		return skr_error_set(err, -EINVAL, "mkfs: size and offset must be 4096-aligned");
	if (stat(src, &root) < 0)
		return skr_error_set(err, -errno, "--dir %s: %s", src, skr_strerror(errno));
	/* mke2fs -d copies the tree below the root, not the root's own owner: give it */
	if (asprintf(&ext,
	             "offset=%" PRIu64 ",nodiscard,lazy_itable_init=0,lazy_journal_init=0,"
	             "root_owner=%u:%u%s%s",
	             offset, (unsigned)root.st_uid, (unsigned)root.st_gid,
	             uuid ? ",hash_seed=" : "", uuid ? uuid : "") < 0) {
		ext = NULL;
		return skr_error_set(err, -ENOMEM, "mkfs: out of memory");
	}
	snprintf(blocks, sizeof(blocks), "%" PRIu64, fs_size / BLOCK);
	argv[n++] = mke2fs ? mke2fs : "mke2fs";
	argv[n++] = "-q";
	argv[n++] = "-t";
	argv[n++] = "ext4";
	argv[n++] = "-b";
	argv[n++] = "4096";
	argv[n++] = "-d";
	argv[n++] = src;
	argv[n++] = "-E";
	argv[n++] = ext;
	if (inodes) {
		snprintf(inodes_s, sizeof(inodes_s), "%" PRIu64, inodes);
		argv[n++] = "-N";
		argv[n++] = inodes_s;
	}
	if (uuid) {
		argv[n++] = "-U";
		argv[n++] = uuid;
	}
	if (label) {
		argv[n++] = "-L";
		argv[n++] = label;
	}
	argv[n++] = path;
	argv[n++] = blocks;
	argv[n] = NULL;
	if (fake_time >= 0) {
		snprintf(time_env, sizeof(time_env), "E2FSPROGS_FAKE_TIME=%" PRId64, fake_time);
		env[0] = time_env;
	}

	r = run_capture(argv, env, &out);
	if (r < 0)
		return skr_error_set(err, r == -ENOENT ? -ENOPKG : r,
		                     "mkfs: cannot run %s: %s (install e2fsprogs)", argv[0],
		                     skr_strerror(r));
	if (r != 0) {
		if (out && (strstr(out, "Could not allocate block") ||
		            strstr(out, "Could not allocate inode") ||
		            strstr(out, "No space left on device")))
			return skr_error_set(err, -EFBIG,
			                     "%s needs more than the %" PRIu64
			                     " MiB filesystem (mke2fs: "
			                     "%s)",
			                     src, fs_size / MIB, last_line(out));
		return skr_error_set(err, -EIO, "mkfs: mke2fs failed (exit %d): %s", r,
		                     last_line(out));
	}
	free(out);
	out = NULL;

	/* mke2fs has no option for the root directory's mode: set it like the source's */
	if ((root.st_mode & 07777) == 0755)
		return 0;
	if (asprintf(&device, "%s?offset=%" PRIu64, path, offset) < 0) {
		device = NULL;
		return skr_error_set(err, -ENOMEM, "mkfs: out of memory");
	}
	snprintf(mode_cmd, sizeof(mode_cmd), "sif / mode 0%o",
	         (unsigned)(S_IFDIR | (root.st_mode & 07777)));
	const char *dargv[] = {debugfs ? debugfs : "debugfs", "-w", "-R", mode_cmd, device, NULL};
	r = run_capture(dargv, NULL, &out);
	if (r < 0)
		return skr_error_set(err, r == -ENOENT ? -ENOPKG : r,
		                     "mkfs: cannot run %s: %s (install e2fsprogs)", dargv[0],
		                     skr_strerror(r));
	if (r != 0 || !only_banner(out))
		return skr_error_set(err, -EIO, "mkfs: debugfs could not set the root mode: %s",
		                     last_line(out));
	log_debug("mkfs: root directory mode %o", (unsigned)(root.st_mode & 07777));
	return 0;
}
