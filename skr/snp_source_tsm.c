/* SPDX-License-Identifier: MIT */
/*
 * configfs-tsm (§2.5, kernel ≥ 6.7): one short-lived entry per report under
 * <root>/sys/kernel/config/tsm/report. The kernel builds the report from inblob and privlevel
 * when outblob is read; auxblob holds the host's certificate table.
 *
 * Each request gets its own entry ("skr-<pid>-<n>"), so no other process shares our inblob; the
 * generation counter still guards against a writer that found the entry anyway.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "fileio.h"
#include "log.h"
#include "snp_source_internal.h"

#define TSM_PROVIDER_SEV "sev_guest"
#define TSM_TEXT_MAX 64
#define TSM_MKDIR_ATTEMPTS 8
/* outblob is one report (1184 bytes); a little room lets a wrong size be named, not cut off. */
#define TSM_OUTBLOB_MAX 4096

/* Process-wide, so two sources in one process never pick the same entry name. */
static atomic_uint tsm_counter;

static int entry_mkdir(const struct snp_tsm_ops *ops, const char *path)
{
	if (ops->mkdir_entry)
		return ops->mkdir_entry(path, ops->userdata);
	return mkdir(path, 0700) < 0 ? -errno : 0;
}

static int entry_rmdir(const struct snp_tsm_ops *ops, const char *path)
{
	if (ops->rmdir_entry)
		return ops->rmdir_entry(path, ops->userdata);
	return rmdir(path) < 0 ? -errno : 0;
}

/* Create a fresh entry; a name left by a crashed process with our pid is skipped. */
static int entry_create(const char *report_dir, const struct snp_tsm_ops *ops, char **out,
                        struct skr_error *err)
{
	for (int i = 0; i < TSM_MKDIR_ATTEMPTS; i++) {
		_cleanup_free_ char *path = NULL;
		int r;

		if (asprintf(&path, "%s/skr-%ld-%u", report_dir, (long)getpid(),
		             atomic_fetch_add(&tsm_counter, 1)) < 0)
			return skr_error_set(err, -ENOMEM, "out of memory");
		r = entry_mkdir(ops, path);
		if (r == -EEXIST)
			continue;
		if (r < 0)
			return skr_error_set(err, r, "configfs-tsm: mkdir %s: %s%s", path,
			                     skr_strerror(r),
			                     r == -EACCES || r == -EPERM ? " (run as root)" : "");
		*out = TAKE_PTR(path);
		return 0;
	}
	return skr_error_set(err, -EEXIST, "configfs-tsm: no free entry name under %s", report_dir);
}

/* Always runs, also on error paths; a failure is logged, never replaces the first reason. */
static void entry_remove(const struct snp_tsm_ops *ops, char **path)
{
	int r;

	if (!*path)
		return;
	r = entry_rmdir(ops, *path);
	if (r < 0)
		log_warn("configfs-tsm: rmdir %s: %s (entry left behind)", *path, skr_strerror(r));
	free(*path);
	*path = NULL;
}

/* Read a whole attribute. -ENOENT passes through quietly for optional attributes. */
static int attr_read(const char *entry, const char *attr, size_t max, char **out, size_t *len,
                     struct skr_error *err)
{
	_cleanup_free_ char *path = path_join(entry, attr);
	int r;

	if (!path)
		return skr_error_set(err, -ENOMEM, "out of memory");
	r = read_file(path, max, out, len);
	if (r == -ENOENT)
		return r;
	if (r == -EFBIG)
		return skr_error_set(err, r, "configfs-tsm: %s is larger than %zu bytes", path,
		                     max);
	if (r < 0)
		return skr_error_set(err, r, "configfs-tsm: reading %s: %s", path, skr_strerror(r));
	return 0;
}

/* A text attribute, trailing newline stripped. */
static int attr_read_text(const char *entry, const char *attr, char **out, struct skr_error *err)
{
	size_t len;
	int r = attr_read(entry, attr, TSM_TEXT_MAX, out, &len, err);

	if (r < 0)
		return r;
	while (len > 0 && ((*out)[len - 1] == '\n' || (*out)[len - 1] == ' '))
		(*out)[--len] = '\0';
	return 0;
}

static int attr_read_u64(const char *entry, const char *attr, uint64_t *out, struct skr_error *err)
{
	_cleanup_free_ char *text = NULL;
	char *end;
	int r = attr_read_text(entry, attr, &text, err);

	if (r == -ENOENT)
		return skr_error_set(err, r, "configfs-tsm: %s/%s is missing", entry, attr);
	if (r < 0)
		return r;
	errno = 0;
	*out = strtoull(text, &end, 10);
	if (errno || end == text || *end)
		return skr_error_set(err, -EPROTO, "configfs-tsm: %s/%s is '%s', not a number",
		                     entry, attr, text);
	return 0;
}

/*
 * One write(2) of the whole value: configfs hands a binary attribute's buffer to the provider
 * when the file is closed, so close() is checked too.
 */
static int attr_write(const struct snp_tsm_ops *ops, const char *entry, const char *attr,
                      const void *data, size_t len, struct skr_error *err)
{
	_cleanup_free_ char *path = path_join(entry, attr);
	int fd;
	ssize_t n;

	if (!path)
		return skr_error_set(err, -ENOMEM, "out of memory");
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		int r = -errno;

		if (r == -ENOENT)
			return r;
		return skr_error_set(err, r, "configfs-tsm: opening %s: %s", path, skr_strerror(r));
	}
	do
		n = write(fd, data, len);
	while (n < 0 && errno == EINTR);
	if (n < 0 || (size_t)n != len) {
		int r = n < 0 ? -errno : -EIO;

		close(fd);
		return skr_error_set(err, r, "configfs-tsm: writing %zu bytes to %s: %s", len, path,
		                     n < 0 ? skr_strerror(r) : "short write");
	}
	if (close(fd) < 0)
		return skr_error_set(err, -errno, "configfs-tsm: writing %s: %s", path,
		                     skr_strerror(errno));
	if (ops->attr_written)
		ops->attr_written(entry, attr, ops->userdata);
	return 0;
}

static int provider_check(const char *entry, struct skr_error *err)
{
	_cleanup_free_ char *provider = NULL;
	int r = attr_read_text(entry, "provider", &provider, err);

	if (r == -ENOENT)
		return skr_error_set(err, -ENOTSUP, "configfs-tsm: %s/provider is missing", entry);
	if (r < 0)
		return r;
	if (strcmp(provider, TSM_PROVIDER_SEV) != 0)
		return skr_error_set(
		        err, -ENOTSUP,
		        "configfs-tsm provider is '%s', not '%s' (not an SEV-SNP guest)", provider,
		        TSM_PROVIDER_SEV);
	return 0;
}

static int report_dir_check(const char *report_dir, struct skr_error *err)
{
	struct stat st;

	if (stat(report_dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return skr_error_set(err, -ENODEV,
		                     "configfs-tsm: %s absent (kernel older than 6.7, configfs not "
		                     "mounted on /sys/kernel/config, or tsm_report not loaded)",
		                     report_dir);
	return 0;
}

int snp_tsm_probe(const char *report_dir, const struct snp_tsm_ops *ops, struct skr_error *err)
{
	static const struct snp_tsm_ops configfs_ops = {0};
	_cleanup_free_ char *entry = NULL;
	int r;

	if (!ops)
		ops = &configfs_ops;
	r = report_dir_check(report_dir, err);
	if (r < 0)
		return r;
	/* The provider is only visible inside an entry. */
	r = entry_create(report_dir, ops, &entry, err);
	if (r < 0)
		return r;
	r = provider_check(entry, err);
	entry_remove(ops, &entry);
	return r;
}

/*
 * VMPL: written only when the file exists (older TSM kernels have no privlevel and report at
 * the guest's own level, which is what VMPL 0 means for an ACI UVM).
 */
static int privlevel_write(const struct snp_tsm_ops *ops, const char *entry, uint32_t vmpl,
                           unsigned *writes, struct skr_error *err)
{
	char text[16];
	uint64_t floor;
	int r;

	r = attr_read_u64(entry, "privlevel_floor", &floor, NULL);
	if (r == 0 && vmpl < floor)
		return skr_error_set(
		        err, -EINVAL,
		        "configfs-tsm: VMPL %" PRIu32 " requested but this guest runs at "
		        "VMPL %" PRIu64 " (privlevel_floor); set vmpl to %" PRIu64 " or higher",
		        vmpl, floor, floor);
	snprintf(text, sizeof(text), "%" PRIu32 "\n", vmpl);
	r = attr_write(ops, entry, "privlevel", text, strlen(text), err);
	if (r == -ENOENT) {
		if (vmpl != 0)
			return skr_error_set(err, -ENOTSUP,
			                     "configfs-tsm: VMPL %" PRIu32 " requested but %s "
			                     "has no privlevel attribute (kernel too old)",
			                     vmpl, entry);
		return 0;
	}
	if (r < 0)
		return r;
	(*writes)++;
	return 0;
}

/* One inblob → outblob cycle in @entry. -EAGAIN when another writer touched the entry. */
static int tsm_cycle(struct snp_source *s, const char *entry, const uint8_t report_data[64],
                     uint8_t report[SNP_REPORT_SIZE], struct snp_cert_table *certs,
                     struct skr_error *err)
{
	_cleanup_free_ char *outblob = NULL, *auxblob = NULL;
	size_t out_len = 0, aux_len = 0;
	uint64_t gen_before, gen_after;
	unsigned writes = 0;
	struct snp_report parsed;
	int r;

	r = attr_read_u64(entry, "generation", &gen_before, err);
	if (r < 0)
		return r;
	/* sev_guest takes exactly 64 bytes: they become REPORT_DATA. */
	r = attr_write(&s->tsm, entry, "inblob", report_data, SNP_REPORT_DATA_SIZE, err);
	if (r == -ENOENT)
		return skr_error_set(err, r, "configfs-tsm: %s/inblob is missing", entry);
	if (r < 0)
		return r;
	writes++;
	r = privlevel_write(&s->tsm, entry, s->vmpl, &writes, err);
	if (r < 0)
		return r;

	/* Reading outblob makes the kernel ask the firmware; its errors surface here. */
	r = attr_read(entry, "outblob", TSM_OUTBLOB_MAX, &outblob, &out_len, err);
	if (r == -ENOENT)
		return skr_error_set(err, r, "configfs-tsm: %s/outblob is missing", entry);
	if (r < 0)
		return r;
	/*
	 * The certificates are optional (THIM or KDS supply them otherwise): a host table too big
	 * to be one is dropped like a missing one, not fatal to the report.
	 */
	{
		struct skr_error aux_err = {0};

		r = attr_read(entry, "auxblob", SNP_CERTS_BUF_MAX, &auxblob, &aux_len, &aux_err);
		if (r == -EFBIG)
			log_warn("%s; getting the report without the host's certificates",
			         aux_err.msg);
		else if (r < 0 && r != -ENOENT)
			return skr_error_set(err, r, "%s", aux_err.msg);
	}

	/* Every write of ours bumps generation by one; more means someone else wrote too. */
	r = attr_read_u64(entry, "generation", &gen_after, err);
	if (r < 0)
		return r;
	if (gen_after < gen_before || gen_after - gen_before > writes)
		return skr_error_set(err, -EAGAIN,
		                     "configfs-tsm: %s/generation went from %" PRIu64 " to %" PRIu64
		                     " across our %u writes: another writer used the entry",
		                     entry, gen_before, gen_after, writes);

	if (out_len != SNP_REPORT_SIZE)
		return skr_error_set(err, -EPROTO,
		                     "configfs-tsm: %s/outblob is %zu bytes, expected %d", entry,
		                     out_len, SNP_REPORT_SIZE);
	/* Cheap end-to-end checks that the report answers OUR request. */
	r = snp_report_parse((const uint8_t *)outblob, out_len, &parsed, err);
	if (r < 0) {
		skr_error_prefix(err, "configfs-tsm outblob: ");
		return r;
	}
	if (memcmp(parsed.report_data, report_data, SNP_REPORT_DATA_SIZE) != 0)
		return skr_error_set(
		        err, -EPROTO,
		        "configfs-tsm: outblob REPORT_DATA differs from what was written "
		        "to %s/inblob",
		        entry);
	if (parsed.vmpl != s->vmpl)
		return skr_error_set(err, -EPROTO,
		                     "configfs-tsm: outblob VMPL is %" PRIu32
		                     ", requested %" PRIu32,
		                     parsed.vmpl, s->vmpl);

	memcpy(report, outblob, SNP_REPORT_SIZE);
	if (certs && auxblob)
		snp_source_certs_parse("configfs-tsm auxblob", (const uint8_t *)auxblob, aux_len,
		                       certs);
	return 0;
}

static int tsm_get_report(struct snp_source *s, const uint8_t report_data[64],
                          uint8_t report[SNP_REPORT_SIZE], struct snp_cert_table *certs,
                          struct skr_error *err)
{
	int r = -EAGAIN;

	/* Two attempts: a clash with another writer is retried once in a fresh entry. */
	for (int attempt = 0; attempt < 2 && r == -EAGAIN; attempt++) {
		_cleanup_free_ char *entry = NULL;

		r = entry_create(s->path, &s->tsm, &entry, err);
		if (r < 0)
			return r;
		r = tsm_cycle(s, entry, report_data, report, certs, err);
		entry_remove(&s->tsm, &entry);
		if (r == -EAGAIN && attempt == 0) {
			log_warn("%s; retrying in a new entry", skr_error_message(err));
			skr_error_clear(err);
		}
	}
	return r;
}

static const struct snp_source_backend tsm_backend = {
        .get_report = tsm_get_report,
};

int snp_source_tsm_open(struct snp_source *s, const char *root, const struct snp_tsm_ops *ops,
                        struct skr_error *err)
{
	_cleanup_free_ char *report_dir = snp_source_path(root, SNP_TSM_REPORT_DIR);
	int r;

	if (!report_dir)
		return skr_error_set(err, -ENOMEM, "out of memory");
	if (ops)
		s->tsm = *ops;
	r = snp_tsm_probe(report_dir, &s->tsm, err);
	if (r < 0)
		return r;
	s->path = TAKE_PTR(report_dir);
	s->backend = &tsm_backend;
	return 0;
}
