/* SPDX-License-Identifier: MIT */
/*
 * vm_fuse_file: a FUSE filesystem holding one read-only file whose bytes are those of a backing
 * file, read on demand. The harness test runs it inside the QEMU guest to prove the path the
 * sidecar takes there (a blob exposed as a FUSE file, attached to a loop device, opened with
 * dm-crypt) works with the guest kernel's fuse, loop and dm modules, before encfs is involved.
 *
 *   vm_fuse_file BACKING MOUNTPOINT     serves MOUNTPOINT/image in the foreground until unmounted
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FUSE_USE_VERSION 31
#include <fuse.h>

#include "fileio.h"

#define FILE_NAME "image"

static int backing_fd = -1;
static off_t backing_size;

static int fuse_file_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	memset(st, 0, sizeof(*st));
	if (strcmp(path, "/") == 0) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		return 0;
	}
	if (strcmp(path, "/" FILE_NAME) == 0) {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = backing_size;
		return 0;
	}
	return -ENOENT;
}

static int fuse_file_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t offset,
                             struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	if (strcmp(path, "/") != 0)
		return -ENOENT;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	fill(buf, FILE_NAME, NULL, 0, 0);
	return 0;
}

static int fuse_file_open(const char *path, struct fuse_file_info *fi)
{
	if (strcmp(path, "/" FILE_NAME) != 0)
		return -ENOENT;
	if ((fi->flags & O_ACCMODE) != O_RDONLY)
		return -EROFS;
	return 0;
}

static int fuse_file_read(const char *path, char *buf, size_t size, off_t offset,
                          struct fuse_file_info *fi)
{
	/* FUSE wants the whole range except at the end of the file: read over short reads. */
	return (int)pread_full(backing_fd, buf, size, offset);
}

static const struct fuse_operations fuse_file_ops = {
        .getattr = fuse_file_getattr,
        .readdir = fuse_file_readdir,
        .open = fuse_file_open,
        .read = fuse_file_read,
};

int main(int argc, char **argv)
{
	struct stat st;

	if (argc != 3) {
		fprintf(stderr, "usage: vm_fuse_file BACKING MOUNTPOINT\n");
		return 2;
	}
	backing_fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (backing_fd < 0 || fstat(backing_fd, &st) < 0) {
		fprintf(stderr, "vm_fuse_file: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	/* A block device reports size 0 in st_size: ask for its end instead. */
	backing_size = S_ISBLK(st.st_mode) ? lseek(backing_fd, 0, SEEK_END) : st.st_size;
	if (backing_size < 0) {
		fprintf(stderr, "vm_fuse_file: %s: size: %s\n", argv[1], strerror(errno));
		return 1;
	}

	char *fuse_argv[] = {argv[0], "-f", "-o", "ro,default_permissions", argv[2], NULL};
	return fuse_main(5, fuse_argv, &fuse_file_ops, NULL);
}
