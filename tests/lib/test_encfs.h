/* SPDX-License-Identifier: MIT */
/*
 * Images for tests of encrypted filesystems: sparse files, ext4 made by mkfs.ext4 and LUKS2
 * made with libcryptsetup as generatefs makes it, and whether this kernel has device-mapper
 * (the host does not; the QEMU guest does).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A sparse file of @size bytes at @path (created or truncated, 0600); 0 or -1. */
int test_encfs_make_file(const char *path, uint64_t size);

/*
 * An ext4 filesystem of @size bytes in @path, 4096-byte blocks (as dm-verity wants), holding
 * the tree @src_dir (NULL: empty). 0, or -1 after printing mkfs.ext4's output.
 */
int test_encfs_make_ext4(const char *path, uint64_t size, const char *src_dir);

/*
 * A LUKS2 image of @size bytes in @path as generatefs makes it (aes-xts-plain64 with a 512-bit
 * volume key, 4096-byte sectors, pbkdf2 with few iterations: fast here) with one keyslot for
 * the passphrase @key (@key_len bytes). The data area stays zero. 0, or -1 after saying why.
 */
int test_encfs_make_luks(const char *path, uint64_t size, const uint8_t *key, size_t key_len);

/*
 * Whether the kernel has device-mapper: /proc/misc lists it. /dev/mapper/control alone says
 * nothing (a container's /dev may have the node without the driver).
 */
bool test_encfs_kernel_has_dm(void);

/* "file://" @path, malloc'ed (aborts when out of memory). */
char *test_encfs_file_url(const char *path);
