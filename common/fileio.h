/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Read a whole file of at most @max_size bytes into a malloc'ed buffer with a NUL after the
 * data. Returns 0, -EFBIG when larger, or the negative errno of open/read.
 */
int read_file(const char *path, size_t max_size, char **out, size_t *out_len);

struct secret;

/*
 * read_file() for key material: the content lands in a struct secret (locked, erased when
 * freed) sized from fstat, so no reallocation leaves a partial copy in freed heap. A NUL follows
 * the data (data[len] == 0). Returns 0, -EFBIG over @max_size, -EINVAL for a non-regular file,
 * -EAGAIN when the file grew while being read, or the negative errno of open/read.
 */
int read_file_secret(const char *path, size_t max_size, struct secret **out);

/*
 * Crash-safe replace: write to a temporary file in the same directory, fsync it, rename over
 * @path, fsync the directory. A crash leaves either the old or the new file, never a mix.
 */
int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);

/*
 * read() until @len bytes or the end of the file, over short reads and EINTR: the count read
 * (short only at the end of the file) or -errno.
 */
ssize_t read_full(int fd, void *buf, size_t len);

/* read_full() with pread() from offset @off (the file offset is not moved). */
ssize_t pread_full(int fd, void *buf, size_t len, off_t off);

/* write() all @len bytes, over short writes and EINTR: 0 or -errno. */
int write_full(int fd, const void *buf, size_t len);

/* write_full() with pwrite() at offset @off (the file offset is not moved); -EIO if the kernel
 * writes nothing. */
int pwrite_full(int fd, const void *buf, size_t len, off_t off);

/* mkdir -p with @mode for created components. */
int mkdir_p(const char *path, mode_t mode);

/*
 * Join @dir and @name with exactly one '/' ("/" + "x" = "/x", "a/" + "/x" = "a/x"); malloc'ed,
 * NULL on ENOMEM or an empty @dir.
 */
char *path_join(const char *dir, const char *name);
