/* SPDX-License-Identifier: MIT */
/*
 * Legacy /dev/sev of the 5.15 Microsoft ACI UVM kernels (§2.3): one ioctl carrying the firmware
 * message types and buffer lengths explicitly. No extended report, no certificates.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "snp_source_internal.h"

void sev_snp_legacy_request_build(struct sev_snp_guest_request *g, struct snp_report_req *req,
                                  uint8_t rsp[SEV_SNP_LEGACY_RESPONSE_LEN])
{
	memset(g, 0, sizeof(*g));
	g->req_msg_type = SNP_MSG_REPORT_REQ;
	g->rsp_msg_type = SNP_MSG_REPORT_RSP;
	g->msg_version = SNP_MSG_VERSION;
	g->request_len = sizeof(*req);
	g->request_uaddr = (uint64_t)(uintptr_t)req;
	g->response_len = SEV_SNP_LEGACY_RESPONSE_LEN;
	g->response_uaddr = (uint64_t)(uintptr_t)rsp;
}

int snp_sev_legacy_fetch(int fd, const struct snp_ioctl_ops *io, const uint8_t report_data[64],
                         uint32_t vmpl, uint8_t report[SNP_REPORT_SIZE], struct skr_error *err)
{
	struct snp_report_req req;
	struct sev_snp_guest_request g;
	uint8_t rsp[SEV_SNP_LEGACY_RESPONSE_LEN] = {0};
	int r;

	snp_report_req_build(&req, report_data, vmpl);
	sev_snp_legacy_request_build(&g, &req, rsp);
	r = io->ioctl(fd, SEV_SNP_GUEST_MSG_REPORT, &g, io->userdata);
	if (r == -ENOTTY)
		return skr_error_set(
		        err, r,
		        "ioctl SEV_SNP_GUEST_MSG_REPORT not supported: this /dev/sev is "
		        "not the 5.15 SNP guest driver (a SEV host's firmware device "
		        "has the same name); set the attestation source");
	if (r < 0)
		return skr_error_set(
		        err, r,
		        "ioctl SEV_SNP_GUEST_MSG_REPORT failed: %s; firmware error 0x%" PRIx32,
		        skr_strerror(r), g.error);
	if (g.error)
		return skr_error_set(
		        err, -EIO, "SEV_SNP_GUEST_MSG_REPORT: firmware error 0x%" PRIx32, g.error);
	return snp_msg_report_rsp_check(rsp, sizeof(rsp), report, err);
}

static int sev_get_report(struct snp_source *s, const uint8_t report_data[64],
                          uint8_t report[SNP_REPORT_SIZE], struct snp_cert_table *certs,
                          struct skr_error *err)
{
	/* This ABI has no extended report: @certs stays empty. */
	return snp_sev_legacy_fetch(s->fd, &s->io, report_data, s->vmpl, report, err);
}

static const struct snp_source_backend sev_backend = {
        .get_report = sev_get_report,
};

int snp_source_sev_open(struct snp_source *s, const char *dev, struct skr_error *err)
{
	int fd = snp_source_device_open(dev, err);

	if (fd < 0)
		return fd;
	s->fd = fd;
	s->path = strdup(dev);
	if (!s->path)
		return skr_error_set(err, -ENOMEM, "out of memory");
	s->io = snp_ioctl_ops_kernel;
	s->backend = &sev_backend;
	return 0;
}
