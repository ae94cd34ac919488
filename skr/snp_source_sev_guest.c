/* SPDX-License-Identifier: MIT */
/*
 * Upstream /dev/sev-guest (§2.2): SNP_GET_EXT_REPORT with a certificate buffer, falling back to
 * SNP_GET_REPORT on kernels without it. Also the MSG_REPORT_RSP check shared with /dev/sev.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bytes.h"
#include "cleanup.h"
#include "log.h"
#include "snp_source_internal.h"

#define PAGE_SIZE_4K 4096u

static int kernel_ioctl(int fd, unsigned long request, void *arg, void *userdata)
{
	int r;

	do
		r = ioctl(fd, request, arg);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : 0;
}

const struct snp_ioctl_ops snp_ioctl_ops_kernel = {
        .ioctl = kernel_ioctl,
        .busy_sleep_ms = 100,
};

void snp_report_req_build(struct snp_report_req *req, const uint8_t report_data[64], uint32_t vmpl)
{
	/* rsvd is MBZ: the firmware refuses the request otherwise. */
	memset(req, 0, sizeof(*req));
	memcpy(req->user_data, report_data, sizeof(req->user_data));
	req->vmpl = vmpl;
}

static const char *report_status_name(uint32_t status)
{
	switch (status) {
	case SNP_REPORT_STATUS_INVALID_PARAM:
		return "INVALID_PARAM: e.g. a VMPL below the guest's own";
	case SNP_REPORT_STATUS_INVALID_KEY:
		return "INVALID_KEY";
	default:
		return "unknown status";
	}
}

int snp_msg_report_rsp_check(const uint8_t *rsp, size_t len, uint8_t report[SNP_REPORT_SIZE],
                             struct skr_error *err)
{
	uint32_t status, size;

	if (len < SNP_MSG_REPORT_RSP_MIN_LEN)
		return skr_error_set(err, -EPROTO, "MSG_REPORT_RSP is %zu bytes, need at least %d",
		                     len, SNP_MSG_REPORT_RSP_MIN_LEN);
	status = get_le32(rsp + SNP_MSG_REPORT_RSP_STATUS_OFF);
	if (status != SNP_REPORT_STATUS_SUCCESS)
		return skr_error_set(err, -EIO,
		                     "firmware refused the report: MSG_REPORT_RSP STATUS "
		                     "0x%" PRIx32 " (%s)",
		                     status, report_status_name(status));
	size = get_le32(rsp + SNP_MSG_REPORT_RSP_SIZE_OFF);
	if (size != SNP_REPORT_SIZE)
		return skr_error_set(err, -EPROTO,
		                     "MSG_REPORT_RSP REPORT_SIZE is %" PRIu32 ", expected %d", size,
		                     SNP_REPORT_SIZE);
	memcpy(report, rsp + SNP_MSG_REPORT_RSP_REPORT_OFF, SNP_REPORT_SIZE);
	return 0;
}

static const char *fw_error_name(uint32_t e)
{
	switch (e) {
	case 0:
		return "none";
	case SNP_REPORT_STATUS_INVALID_PARAM:
		return "INVALID_PARAM";
	case SNP_REPORT_STATUS_INVALID_KEY:
		return "INVALID_KEY";
	case SNP_FW_ERR_NO_CALL:
		return "no firmware call made";
	default:
		return "firmware error";
	}
}

static const char *vmm_error_name(uint32_t e)
{
	switch (e) {
	case 0:
		return "none";
	case SNP_GUEST_VMM_ERR_INVALID_LEN:
		return "INVALID_LEN";
	case SNP_GUEST_VMM_ERR_BUSY:
		return "BUSY";
	case 0xFFFFFFFFu:
		return "GENERIC";
	default:
		return "hypervisor error";
	}
}

void snp_exitinfo2_describe(uint64_t exitinfo2, char *buf, size_t len)
{
	uint32_t fw = (uint32_t)exitinfo2, vmm = (uint32_t)(exitinfo2 >> 32);

	snprintf(buf, len, "fw_error 0x%" PRIx32 " (%s), vmm_error 0x%" PRIx32 " (%s)", fw,
	         fw_error_name(fw), vmm, vmm_error_name(vmm));
}

int snp_sev_guest_fetch(int fd, const struct snp_ioctl_ops *io, const uint8_t report_data[64],
                        uint32_t vmpl, uint8_t report[SNP_REPORT_SIZE],
                        struct snp_cert_table *certs, struct skr_error *err)
{
	struct snp_ext_report_req ext;
	_cleanup_free_ struct snp_report_resp *resp = NULL;
	_cleanup_free_ uint8_t *cbuf = NULL;
	size_t clen = SNP_CERTS_BUF_INITIAL;
	bool use_ext = certs != NULL, grown = false;
	unsigned busy = 0;
	int r;

	resp = malloc(sizeof(*resp));
	if (!resp)
		return skr_error_set(err, -ENOMEM, "out of memory");

	for (;;) {
		struct snp_guest_request_ioctl g = {.msg_version = SNP_MSG_VERSION};
		unsigned long request;
		uint32_t vmm, fw;
		char why[128];

		memset(&ext, 0, sizeof(ext));
		memset(resp, 0, sizeof(*resp));
		snp_report_req_build(&ext.data, report_data, vmpl);
		if (use_ext) {
			/* Fresh and zeroed every attempt: "all zero" must mean "no certs". */
			free(cbuf);
			cbuf = calloc(1, clen);
			if (!cbuf)
				return skr_error_set(err, -ENOMEM, "out of memory");
			ext.certs_address = (uint64_t)(uintptr_t)cbuf;
			ext.certs_len = (uint32_t)clen;
			g.req_data = (uint64_t)(uintptr_t)&ext;
			request = SNP_GET_EXT_REPORT;
		} else {
			g.req_data = (uint64_t)(uintptr_t)&ext.data;
			request = SNP_GET_REPORT;
		}
		g.resp_data = (uint64_t)(uintptr_t)resp;

		r = io->ioctl(fd, request, &g, io->userdata);
		if (r == 0)
			break;

		vmm = (uint32_t)(g.exitinfo2 >> 32);
		fw = (uint32_t)g.exitinfo2;
		if (vmm == SNP_GUEST_VMM_ERR_BUSY && busy < SNP_BUSY_RETRIES) {
			/* The host's request queue is full (another vCPU): transient. */
			busy++;
			log_debug("/dev/sev-guest: host busy, retry %u of %u", busy,
			          SNP_BUSY_RETRIES);
			sleep_ms(io->busy_sleep_ms);
			continue;
		}
		if (use_ext && vmm == SNP_GUEST_VMM_ERR_INVALID_LEN) {
			/* The kernel wrote the size the host's blob needs into certs_len. */
			size_t need = ((size_t)ext.certs_len + PAGE_SIZE_4K - 1) &
			              ~(size_t)(PAGE_SIZE_4K - 1);

			if (grown || need <= clen)
				return skr_error_set(
				        err, -EPROTO,
				        "SNP_GET_EXT_REPORT: certificate buffer of %zu bytes "
				        "refused as too small, kernel asks for %" PRIu32,
				        clen, ext.certs_len);
			if (need > SNP_CERTS_BUF_MAX) {
				log_warn("/dev/sev-guest: certificates need %zu > %d bytes: "
				         "getting the report without them",
				         need, SNP_CERTS_BUF_MAX);
				use_ext = false;
				continue;
			}
			clen = need;
			grown = true;
			continue;
		}
		/*
		 * Worth a plain GET_REPORT: ENOTTY (this kernel has no EXT_REPORT; a kernel that
		 * disabled the VMPCK answers ENOTTY too, told apart when GET_REPORT fails alike),
		 * and EINVAL from the kernel itself before any firmware call (fw_error
		 * 0xFFFFFFFF), e.g. a certificate buffer beyond its limit. EINVAL carrying a
		 * firmware status is the firmware refusing the request (INVALID_PARAM: the VMPL):
		 * GET_REPORT would be refused alike, and retrying would hide which call failed.
		 */
		if (use_ext && (r == -ENOTTY || (r == -EINVAL && fw == SNP_FW_ERR_NO_CALL))) {
			log_debug(
			        "/dev/sev-guest: SNP_GET_EXT_REPORT failed (%s), using GET_REPORT",
			        skr_strerror(r));
			use_ext = false;
			continue;
		}
		if (r == -ENOTTY)
			return skr_error_set(
			        err, r,
			        "ioctl %s failed: the kernel refuses every guest request on this "
			        "device: the guest's VMPCK was disabled after a failed message "
			        "exchange (dmesg says \"VMPCK is disabled\"; the guest must be "
			        "restarted), or the device is not an SEV-SNP guest device",
			        request == SNP_GET_EXT_REPORT ? "SNP_GET_EXT_REPORT"
			                                      : "SNP_GET_REPORT");
		snp_exitinfo2_describe(g.exitinfo2, why, sizeof(why));
		return skr_error_set(
		        err, r, "ioctl %s failed: %s; %s%s",
		        request == SNP_GET_EXT_REPORT ? "SNP_GET_EXT_REPORT" : "SNP_GET_REPORT",
		        skr_strerror(r), why,
		        vmm == SNP_GUEST_VMM_ERR_BUSY ? " (host still busy after retries)" : "");
	}

	r = snp_msg_report_rsp_check(resp->data, sizeof(resp->data), report, err);
	if (r < 0)
		return r;
	if (use_ext)
		snp_source_certs_parse("/dev/sev-guest", cbuf, clen, certs);
	return 0;
}

static int sev_guest_get_report(struct snp_source *s, const uint8_t report_data[64],
                                uint8_t report[SNP_REPORT_SIZE], struct snp_cert_table *certs,
                                struct skr_error *err)
{
	return snp_sev_guest_fetch(s->fd, &s->io, report_data, s->vmpl, report, certs, err);
}

static const struct snp_source_backend sev_guest_backend = {
        .get_report = sev_guest_get_report,
};

/* Shared by the device backends: a clear reason for each way opening a device node fails. */
int snp_source_device_open(const char *dev, struct skr_error *err)
{
	int fd = open(dev, O_RDWR | O_CLOEXEC);

	if (fd >= 0)
		return fd;
	switch (errno) {
	case ENOENT:
		return skr_error_set(err, -ENODEV,
		                     "%s: no such device (not an SEV-SNP guest, or "
		                     "the guest driver is not loaded)",
		                     dev);
	case EACCES:
	case EPERM:
		return skr_error_set(err, -errno,
		                     "%s: permission denied (run as root or grant "
		                     "read/write access to the device)",
		                     dev);
	default:
		return skr_error_set(err, -errno, "%s: %s", dev, skr_strerror(errno));
	}
}

int snp_source_sev_guest_open(struct snp_source *s, const char *dev, struct skr_error *err)
{
	int fd = snp_source_device_open(dev, err);

	if (fd < 0)
		return fd;
	s->fd = fd;
	s->path = strdup(dev);
	if (!s->path)
		return skr_error_set(err, -ENOMEM, "out of memory");
	s->io = snp_ioctl_ops_kernel;
	s->backend = &sev_guest_backend;
	return 0;
}
