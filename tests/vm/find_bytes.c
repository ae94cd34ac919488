/* SPDX-License-Identifier: MIT */
/*
 * vm_find_bytes: search regular files for byte strings (keys, in every encoding a key could be
 * written in) and name each file holding one. The end-to-end test runs it inside the guest
 * after the sidecar ran, over every filesystem, to prove no key reached a file.
 *
 *   vm_find_bytes NEEDLES PATH...
 *
 * NEEDLES: lines of hex, one needle each (at least 8 bytes). It is read from a raw disk the
 * guest does not mount, so the needles themselves are on none of the searched filesystems.
 * Walks each PATH without following symlinks and without leaving its filesystem (so /proc, /sys
 * and /dev are only searched when named); reads regular files only.
 * Exit status: 0 nothing found, 1 found (each hit printed), 2 error.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "b64.h"
#include "cleanup.h"

#define NEEDLES_MAX 64
#define NEEDLE_MIN 8
#define NEEDLE_MAX 4096

struct needle {
	uint8_t bytes[NEEDLE_MAX];
	size_t len;
};

static struct needle needles[NEEDLES_MAX];
static size_t n_needles;
static unsigned long files_searched;
static int hits;
static int errors;

static int load_needles(const char *path)
{
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *f = fopen(path, "re");

	if (!f) {
		fprintf(stderr, "vm_find_bytes: %s: %s\n", path, strerror(errno));
		return -1;
	}
	/* A raw disk is zero-padded after the text: stop at the first empty or NUL line. */
	while ((n = getline(&line, &cap, f)) > 0 && line[0] != '\0' && line[0] != '\n') {
		size_t hex_len;

		line[strcspn(line, "\r\n")] = '\0';
		hex_len = strlen(line);
		if (n_needles == NEEDLES_MAX || hex_len % 2 || hex_len / 2 < NEEDLE_MIN ||
		    hex_len / 2 > NEEDLE_MAX ||
		    hex_decode(line, hex_len, needles[n_needles].bytes, hex_len / 2) < 0) {
			fprintf(stderr,
			        "vm_find_bytes: %s line %zu: want at most %d lines of hex, "
			        "each %d..%d bytes\n",
			        path, n_needles + 1, NEEDLES_MAX, NEEDLE_MIN, NEEDLE_MAX);
			fclose(f);
			return -1;
		}
		needles[n_needles++].len = hex_len / 2;
	}
	fclose(f);
	if (n_needles == 0) {
		fprintf(stderr, "vm_find_bytes: %s holds no needle\n", path);
		return -1;
	}
	return 0;
}

static void search_file(const char *path, const struct stat *st)
{
	_cleanup_close_ int fd = -1;
	void *map;

	if (st->st_size == 0)
		return;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		fprintf(stderr, "vm_find_bytes: cannot read %s: %s\n", path, strerror(errno));
		errors++;
		return;
	}
	map = mmap(NULL, (size_t)st->st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		fprintf(stderr, "vm_find_bytes: cannot map %s: %s\n", path, strerror(errno));
		errors++;
		return;
	}
	files_searched++;
	for (size_t i = 0; i < n_needles; i++)
		if (memmem(map, (size_t)st->st_size, needles[i].bytes, needles[i].len)) {
			printf("FOUND needle %zu (%zu bytes) in %s\n", i + 1, needles[i].len, path);
			hits++;
		}
	munmap(map, (size_t)st->st_size);
}

static int visit(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)ftw;
	if (type == FTW_F && S_ISREG(st->st_mode))
		search_file(path, st);
	else if (type == FTW_DNR || type == FTW_NS) {
		fprintf(stderr, "vm_find_bytes: cannot enter %s\n", path);
		errors++;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: vm_find_bytes NEEDLES PATH...\n");
		return 2;
	}
	if (load_needles(argv[1]) < 0)
		return 2;
	for (int i = 2; i < argc; i++)
		if (nftw(argv[i], visit, 32, FTW_PHYS | FTW_MOUNT) < 0) {
			fprintf(stderr, "vm_find_bytes: %s: %s\n", argv[i], strerror(errno));
			return 2;
		}
	printf("vm_find_bytes: %zu needle(s), %lu file(s) searched, %d hit(s), %d unreadable\n",
	       n_needles, files_searched, hits, errors);
	if (hits)
		return 1;
	return errors ? 2 : 0;
}
