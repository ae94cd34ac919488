/* SPDX-License-Identifier: MIT */
/*
 * vm_azurite: the Blob REST calls the end-to-end test's shell script needs against an Azurite it
 * started itself, through the SharedKey signing and SAS generation of tests/lib/test_azurite.c.
 *
 *   vm_azurite container PORT NAME [--public]     Create Container (--public: anonymous reads)
 *   vm_azurite put PORT CONTAINER BLOB FILE [--page]
 *                                                 upload FILE as a block blob (a page blob with
 *                                                 --page: writable through Put Page)
 *   vm_azurite get PORT CONTAINER BLOB OUT        download a blob into OUT
 *   vm_azurite sas CONTAINER BLOB PERMS SECONDS   print a service SAS query for one blob
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "test_azurite.h"

static int usage(void)
{
	fprintf(stderr, "usage: vm_azurite container PORT NAME [--public]\n"
	                "       vm_azurite put PORT CONTAINER BLOB FILE [--page]\n"
	                "       vm_azurite get PORT CONTAINER BLOB OUT\n"
	                "       vm_azurite sas CONTAINER BLOB PERMS SECONDS\n");
	return 2;
}

static int parse_port(const char *s, struct test_azurite *az)
{
	char *end;
	long port;

	errno = 0;
	port = strtol(s, &end, 10);
	if (errno || *end || port < 1 || port > 65535) {
		fprintf(stderr, "vm_azurite: '%s' is not a port\n", s);
		return -1;
	}
	memset(az, 0, sizeof(*az));
	az->pid = -1;
	az->port = (int)port;
	snprintf(az->endpoint, sizeof(az->endpoint), "http://127.0.0.1:%d/%s", az->port,
	         TEST_AZURITE_ACCOUNT);
	return 0;
}

static int put(const struct test_azurite *az, const char *container, const char *blob,
               const char *path, bool page)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	void *map;
	int r;

	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "vm_azurite: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!page)
		return test_azurite_put_block_blob_fd(az, container, blob, fd,
		                                      (uint64_t)st.st_size);
	if (st.st_size == 0 || st.st_size % 512) {
		fprintf(stderr,
		        "vm_azurite: %s: a page blob needs a non-empty multiple of 512 bytes\n",
		        path);
		return -1;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		fprintf(stderr, "vm_azurite: cannot map %s: %s\n", path, strerror(errno));
		return -1;
	}
	r = test_azurite_put_page_blob(az, container, blob, map, (size_t)st.st_size);
	munmap(map, (size_t)st.st_size);
	return r;
}

static int get(const struct test_azurite *az, const char *container, const char *blob,
               const char *out)
{
	_cleanup_free_ uint8_t *data = NULL;
	size_t len = 0;
	_cleanup_close_ int fd = -1;

	if (test_azurite_get_blob(az, container, blob, &data, &len) < 0)
		return -1;
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "vm_azurite: %s: %s\n", out, strerror(errno));
		return -1;
	}
	for (size_t done = 0; done < len;) {
		ssize_t n = write(fd, data + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "vm_azurite: %s: %s\n", out, strerror(errno));
			return -1;
		}
		done += (size_t)n;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct test_azurite az;

	if (argc >= 4 && strcmp(argv[1], "container") == 0) {
		bool public_blob = argc == 5 && strcmp(argv[4], "--public") == 0;
		if (argc != 4 && !public_blob)
			return usage();
		if (parse_port(argv[2], &az) < 0)
			return 2;
		return test_azurite_create_container(&az, argv[3], public_blob) < 0 ? 1 : 0;
	}
	if (argc >= 6 && strcmp(argv[1], "put") == 0) {
		bool page = argc == 7 && strcmp(argv[6], "--page") == 0;
		if (argc != 6 && !page)
			return usage();
		if (parse_port(argv[2], &az) < 0)
			return 2;
		return put(&az, argv[3], argv[4], argv[5], page) < 0 ? 1 : 0;
	}
	if (argc == 6 && strcmp(argv[1], "get") == 0) {
		if (parse_port(argv[2], &az) < 0)
			return 2;
		return get(&az, argv[3], argv[4], argv[5]) < 0 ? 1 : 0;
	}
	if (argc == 6 && strcmp(argv[1], "sas") == 0) {
		char *end;
		long seconds = strtol(argv[5], &end, 10);
		_cleanup_free_ char *sas = NULL;

		if (*end || seconds <= 0)
			return usage();
		sas = test_azurite_blob_sas(argv[2], argv[3], argv[4], time(NULL) + seconds, NULL);
		if (!sas)
			return 1;
		printf("%s\n", sas);
		return 0;
	}
	return usage();
}
