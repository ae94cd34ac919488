/* SPDX-License-Identifier: MIT */
/*
 * Report sources (§2): one interface over configfs-tsm, /dev/sev-guest, the 5.15 ACI /dev/sev
 * and the project's virtual platform. This file picks and dispatches; the backends live in
 * snp_source_{tsm,sev_guest,sev}.c and snp_virtual.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "cleanup.h"
#include "fileio.h"
#include "log.h"
#include "snp_source_internal.h"

static const char *const kind_names[] = {
        [SNP_SOURCE_AUTO] = "auto",       [SNP_SOURCE_SEV_GUEST] = "sev-guest",
        [SNP_SOURCE_SEV] = "sev",         [SNP_SOURCE_TSM] = "configfs-tsm",
        [SNP_SOURCE_VIRTUAL] = "virtual",
};

int snp_source_kind_from_string(const char *s, enum snp_source_kind *out)
{
	if (!s || !out)
		return -EINVAL;
	for (size_t i = 0; i < ELEMENTSOF(kind_names); i++)
		if (strcasecmp(s, kind_names[i]) == 0) {
			*out = (enum snp_source_kind)i;
			return 0;
		}
	return -EINVAL;
}

const char *snp_source_kind_name(enum snp_source_kind k)
{
	if ((unsigned)k >= ELEMENTSOF(kind_names))
		return "unknown";
	return kind_names[k];
}

struct snp_source *snp_source_alloc(enum snp_source_kind kind, uint32_t vmpl)
{
	struct snp_source *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->kind = kind;
	s->vmpl = vmpl;
	s->fd = -1;
	return s;
}

char *snp_source_path(const char *root, const char *rel)
{
	return path_join(root && *root ? root : "/", rel);
}

/*
 * An untrusted host fills the certificate table. The report does not depend on it (its
 * signature is checked against a chain that is verified separately, and THIM/KDS supply
 * certificates otherwise), so a malformed table is dropped with a warning rather than failing
 * attestation.
 */
void snp_source_certs_parse(const char *who, const uint8_t *buf, size_t len,
                            struct snp_cert_table *certs)
{
	struct snp_cert_table t = {0};
	struct skr_error e = {0};

	/* All zero (or nothing): the host supplied no certificates (§2.2). */
	if (len == 0 || all_zero(buf, len))
		return;
	if (snp_cert_table_parse(buf, len, &t, &e) < 0) {
		log_warn("%s: ignoring the host's certificate table: %s", who,
		         skr_error_message(&e));
		return;
	}
	*certs = t;
}

static bool path_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* The virtual backend: a thin adapter over snp_virtual.c (dev/test only). */
static int virtual_get_report(struct snp_source *s, const uint8_t report_data[64],
                              uint8_t report[SNP_REPORT_SIZE], struct snp_cert_table *certs,
                              struct skr_error *err)
{
	int r = snp_virtual_get_report(s->virt, report_data, s->vmpl, report, err);

	if (r < 0)
		return r;
	if (certs)
		return snp_virtual_cert_table(s->virt, certs, err);
	return 0;
}

static void virtual_close(struct snp_source *s)
{
	snp_virtual_free(s->virt);
	s->virt = NULL;
}

static const struct snp_source_backend virtual_backend = {
        .get_report = virtual_get_report,
        .close = virtual_close,
};

static int open_virtual(struct snp_source *s, const char *dir, struct skr_error *err)
{
	int r;

	if (!dir || !*dir)
		return skr_error_set(err, -EINVAL,
		                     "attestation source 'virtual' needs virtual_dir (a platform "
		                     "directory made by snp_virtual_create)");
	r = snp_virtual_open(dir, &s->virt, err);
	if (r < 0) {
		skr_error_prefix(err, "virtual SNP platform %s: ", dir);
		return r;
	}
	s->path = strdup(dir);
	if (!s->path)
		return skr_error_set(err, -ENOMEM, "out of memory");
	s->backend = &virtual_backend;
	log_warn("attestation source is the VIRTUAL SNP platform in %s: its reports prove nothing "
	         "about hardware (dev/test only)",
	         dir);
	return 0;
}

/*
 * AUTO order, hardware interfaces only (the virtual platform must be asked for by name so a
 * production machine can never silently attest with software keys):
 *  1. configfs-tsm, when the report directory exists and its provider is sev_guest: the kernel's
 *     generic, documented interface (≥ 6.7); the kernel owns the message sequence numbers and
 *     the certificate buffer, so nothing ABI-specific can go wrong on our side. A TDX guest also
 *     has the directory, hence the provider check.
 *  2. /dev/sev-guest (≥ 5.19): present on every upstream SNP guest, also those without TSM.
 *  3. /dev/sev: the 5.15 Microsoft ACI UVM kernels' private ABI. Last because a SEV *host*
 *     (the PSP firmware device of ccp) also has a /dev/sev; the guest kernels above never do.
 * The Go anchor probes /dev/sev first; the order only matters where two interfaces coexist,
 * and there the newer interface is the better maintained one.
 */
static int open_auto(struct snp_source *s, const char *root, struct skr_error *err)
{
	_cleanup_free_ char *tsm_dir = snp_source_path(root, SNP_TSM_REPORT_DIR);
	_cleanup_free_ char *sev_guest = snp_source_path(root, "dev/sev-guest");
	_cleanup_free_ char *sev = snp_source_path(root, "dev/sev");

	struct skr_error probe_err = {0};

	if (!tsm_dir || !sev_guest || !sev)
		return skr_error_set(err, -ENOMEM, "out of memory");

	if (path_exists(tsm_dir)) {
		s->kind = SNP_SOURCE_TSM;
		if (snp_source_tsm_open(s, root, NULL, &probe_err) == 0)
			return 0;
		log_debug("attestation source auto: configfs-tsm not usable: %s",
		          skr_error_message(&probe_err));
	}
	if (path_exists(sev_guest)) {
		s->kind = SNP_SOURCE_SEV_GUEST;
		return snp_source_sev_guest_open(s, sev_guest, err);
	}
	if (path_exists(sev)) {
		s->kind = SNP_SOURCE_SEV;
		return snp_source_sev_open(s, sev, err);
	}
	/* configfs-tsm was there but refused us (EACCES, another provider): say why. */
	if (probe_err.msg[0])
		return skr_error_set(err, -ENODEV,
		                     "no SEV-SNP device: /dev/sev-guest and /dev/sev absent, and "
		                     "configfs-tsm is present but not usable (%s); set the "
		                     "attestation source",
		                     probe_err.msg);
	return skr_error_set(err, -ENODEV,
	                     "no SEV-SNP device: /dev/sev-guest, /dev/sev and configfs-tsm absent; "
	                     "set the attestation source");
}

int snp_source_open(const struct snp_source_config *cfg, struct snp_source **out,
                    struct skr_error *err)
{
	struct snp_source *s;
	_cleanup_free_ char *dev = NULL;
	int r;

	if (!cfg || !out)
		return skr_error_set(err, -EINVAL, "attestation source: no configuration given");
	if ((unsigned)cfg->kind >= ELEMENTSOF(kind_names))
		return skr_error_set(err, -EINVAL, "attestation source kind %d is not one of %s",
		                     (int)cfg->kind, "auto, sev-guest, sev, configfs-tsm, virtual");
	/* TSM_PRIVLEVEL_MAX and the SNP ABI: VMPLs are 0..3. */
	if (cfg->vmpl > 3)
		return skr_error_set(err, -EINVAL,
		                     "attestation source vmpl %u is out of range (0..3)",
		                     (unsigned)cfg->vmpl);

	s = snp_source_alloc(cfg->kind, cfg->vmpl);
	if (!s)
		return skr_error_set(err, -ENOMEM, "out of memory");

	switch (cfg->kind) {
	case SNP_SOURCE_AUTO:
		r = open_auto(s, cfg->root, err);
		break;
	case SNP_SOURCE_SEV_GUEST:
		dev = snp_source_path(cfg->root, "dev/sev-guest");
		r = dev ? snp_source_sev_guest_open(s, dev, err)
		        : skr_error_set(err, -ENOMEM, "out of memory");
		break;
	case SNP_SOURCE_SEV:
		dev = snp_source_path(cfg->root, "dev/sev");
		r = dev ? snp_source_sev_open(s, dev, err)
		        : skr_error_set(err, -ENOMEM, "out of memory");
		break;
	case SNP_SOURCE_TSM:
		r = snp_source_tsm_open(s, cfg->root, NULL, err);
		break;
	case SNP_SOURCE_VIRTUAL:
		r = open_virtual(s, cfg->virtual_dir, err);
		break;
	default:
		r = skr_error_set(err, -EINVAL, "attestation source kind %d unknown",
		                  (int)cfg->kind);
		break;
	}
	if (r < 0) {
		snp_source_free(s);
		return r;
	}
	log_info("attestation source: %s (%s), VMPL %u", snp_source_kind_name(s->kind),
	         s->path ? s->path : "-", (unsigned)s->vmpl);
	*out = s;
	return 0;
}

enum snp_source_kind snp_source_kind_of(const struct snp_source *s)
{
	return s->kind;
}

int snp_source_get_report(struct snp_source *s, const uint8_t report_data[64],
                          uint8_t report[SNP_REPORT_SIZE], struct snp_cert_table *certs,
                          struct skr_error *err)
{
	int r;

	if (!s || !s->backend || !report_data || !report)
		return skr_error_set(err, -EINVAL,
		                     "get report: source, report_data or report missing");
	/* The table is an output: it starts empty and stays so when the platform supplies none. */
	if (certs)
		memset(certs, 0, sizeof(*certs));
	r = s->backend->get_report(s, report_data, report, certs, err);
	if (r < 0) {
		if (certs)
			snp_cert_table_clear(certs);
		skr_error_prefix(err, "%s report: ", snp_source_kind_name(s->kind));
		return r;
	}
	return 0;
}

void snp_source_free(struct snp_source *s)
{
	if (!s)
		return;
	if (s->backend && s->backend->close)
		s->backend->close(s);
	if (s->fd >= 0)
		close(s->fd);
	free(s->path);
	free(s);
}
