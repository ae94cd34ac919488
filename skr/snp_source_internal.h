/* SPDX-License-Identifier: MIT */
/*
 * Private to libskr's report sources (snp_source*.c) and their unit test.
 *
 * The kernel ABIs are defined here from protocols.md §2.2/§2.3 instead of including
 * <linux/sev-guest.h>: distribution headers lag the kernel (older ones call exitinfo2 "fw_err"
 * and lack the VMM error codes) and the 5.15 ACI /dev/sev ABI has no public header at all.
 * Never include <linux/sev-guest.h> next to this file: the names are the kernel's.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>

#include "skr.h"

/* ---- Firmware messages (§2.1) --------------------------------------------------------------- */

#define SNP_MSG_REPORT_REQ 5
#define SNP_MSG_REPORT_RSP 6
#define SNP_MSG_VERSION 1

/* MSG_REPORT_RSP: STATUS u32 @0x00, REPORT_SIZE u32 @0x04, reserved, REPORT @0x20. */
#define SNP_MSG_REPORT_RSP_STATUS_OFF 0x00
#define SNP_MSG_REPORT_RSP_SIZE_OFF 0x04
#define SNP_MSG_REPORT_RSP_REPORT_OFF 0x20
#define SNP_MSG_REPORT_RSP_MIN_LEN (SNP_MSG_REPORT_RSP_REPORT_OFF + SNP_REPORT_SIZE)

/* MSG_REPORT_RSP STATUS values (§2.1; the kernel maps these two to -EINVAL). */
#define SNP_REPORT_STATUS_SUCCESS 0x00
#define SNP_REPORT_STATUS_INVALID_PARAM 0x16
#define SNP_REPORT_STATUS_INVALID_KEY 0x27

/* ---- Upstream /dev/sev-guest (§2.2) --------------------------------------------------------- */

struct snp_report_req {
	uint8_t user_data[64];
	uint32_t vmpl;
	uint8_t rsvd[28];
};

struct snp_report_resp {
	uint8_t data[4000]; /* MSG_REPORT_RSP at data[0], decrypted by the kernel */
};

struct snp_guest_request_ioctl {
	uint8_t msg_version; /* must be non-zero */
	uint64_t req_data;   /* user pointer to the request */
	uint64_t resp_data;  /* user pointer to the response */
	union {
		uint64_t exitinfo2; /* low 32 bits firmware error, high 32 bits VMM error */
		struct {
			uint32_t fw_error;
			uint32_t vmm_error;
		};
	};
};

struct snp_ext_report_req {
	struct snp_report_req data;
	uint64_t certs_address; /* page-aligned length, zero-filled when the host has none */
	uint32_t certs_len;     /* multiple of 4096; the kernel writes the needed size back */
};

#define SNP_GUEST_REQ_IOC_TYPE 'S'
#define SNP_GET_REPORT _IOWR(SNP_GUEST_REQ_IOC_TYPE, 0x0, struct snp_guest_request_ioctl)
#define SNP_GET_DERIVED_KEY _IOWR(SNP_GUEST_REQ_IOC_TYPE, 0x1, struct snp_guest_request_ioctl)
#define SNP_GET_EXT_REPORT _IOWR(SNP_GUEST_REQ_IOC_TYPE, 0x2, struct snp_guest_request_ioctl)

/* exitinfo2 low half when the kernel refused a request without calling the firmware. */
#define SNP_FW_ERR_NO_CALL 0xFFFFFFFFu

#define SNP_GUEST_VMM_ERR_INVALID_LEN 1
#define SNP_GUEST_VMM_ERR_BUSY 2

_Static_assert(sizeof(struct snp_report_req) == 96, "snp_report_req is 96 bytes");
_Static_assert(offsetof(struct snp_report_req, vmpl) == 0x40, "snp_report_req.vmpl @0x40");
_Static_assert(offsetof(struct snp_report_req, rsvd) == 0x44, "snp_report_req.rsvd @0x44");
_Static_assert(sizeof(struct snp_report_resp) == 4000, "snp_report_resp is 4000 bytes");
_Static_assert(sizeof(struct snp_guest_request_ioctl) == 32, "snp_guest_request_ioctl is 32 B");
_Static_assert(offsetof(struct snp_guest_request_ioctl, msg_version) == 0, "msg_version @0");
_Static_assert(offsetof(struct snp_guest_request_ioctl, req_data) == 8, "req_data @8");
_Static_assert(offsetof(struct snp_guest_request_ioctl, resp_data) == 16, "resp_data @16");
_Static_assert(offsetof(struct snp_guest_request_ioctl, exitinfo2) == 24, "exitinfo2 @24");
_Static_assert(offsetof(struct snp_guest_request_ioctl, fw_error) == 24, "fw_error @24");
_Static_assert(offsetof(struct snp_guest_request_ioctl, vmm_error) == 28, "vmm_error @28");
_Static_assert(sizeof(struct snp_ext_report_req) == 112, "snp_ext_report_req is 112 bytes");
_Static_assert(offsetof(struct snp_ext_report_req, certs_address) == 96, "certs_address @96");
_Static_assert(offsetof(struct snp_ext_report_req, certs_len) == 104, "certs_len @104");
_Static_assert(SNP_GET_REPORT == 0xC0205300u, "SNP_GET_REPORT");
_Static_assert(SNP_GET_DERIVED_KEY == 0xC0205301u, "SNP_GET_DERIVED_KEY");
_Static_assert(SNP_GET_EXT_REPORT == 0xC0205302u, "SNP_GET_EXT_REPORT");

/* ---- Legacy 5.15 ACI /dev/sev (§2.3) ------------------------------------------------------- */

struct sev_snp_guest_request {
	uint8_t req_msg_type; /* SNP_MSG_REPORT_REQ */
	uint8_t rsp_msg_type; /* SNP_MSG_REPORT_RSP */
	uint8_t msg_version;  /* SNP_MSG_VERSION */
	uint16_t request_len;
	uint64_t request_uaddr;
	uint16_t response_len;
	uint64_t response_uaddr;
	uint32_t error; /* firmware error */
};

#define SEV_SNP_GUEST_MSG_REQUEST _IOWR('S', 0x0, struct sev_snp_guest_request)
#define SEV_SNP_GUEST_MSG_REPORT _IOWR('S', 0x1, struct sev_snp_guest_request)
#define SEV_SNP_GUEST_MSG_KEY _IOWR('S', 0x2, struct sev_snp_guest_request)

/* The anchor's response buffer: MSG_REPORT_RSP (32 + 1184) rounded up. */
#define SEV_SNP_LEGACY_RESPONSE_LEN 1280

_Static_assert(sizeof(struct sev_snp_guest_request) == 40, "sev_snp_guest_request is 40 B");
_Static_assert(offsetof(struct sev_snp_guest_request, req_msg_type) == 0, "req_msg_type @0");
_Static_assert(offsetof(struct sev_snp_guest_request, rsp_msg_type) == 1, "rsp_msg_type @1");
_Static_assert(offsetof(struct sev_snp_guest_request, msg_version) == 2, "msg_version @2");
_Static_assert(offsetof(struct sev_snp_guest_request, request_len) == 4, "request_len @4");
_Static_assert(offsetof(struct sev_snp_guest_request, request_uaddr) == 8, "request_uaddr @8");
_Static_assert(offsetof(struct sev_snp_guest_request, response_len) == 16, "response_len @16");
_Static_assert(offsetof(struct sev_snp_guest_request, response_uaddr) == 24, "response_uaddr @24");
_Static_assert(offsetof(struct sev_snp_guest_request, error) == 32, "error @32");
_Static_assert(SEV_SNP_GUEST_MSG_REQUEST == 0xC0285300u, "SEV_SNP_GUEST_MSG_REQUEST");
_Static_assert(SEV_SNP_GUEST_MSG_REPORT == 0xC0285301u, "SEV_SNP_GUEST_MSG_REPORT");
_Static_assert(SEV_SNP_GUEST_MSG_KEY == 0xC0285302u, "SEV_SNP_GUEST_MSG_KEY");
_Static_assert(SEV_SNP_LEGACY_RESPONSE_LEN >= SNP_MSG_REPORT_RSP_MIN_LEN, "legacy response fits");

/* ---- Backends ------------------------------------------------------------------------------ */

/*
 * The ioctl a device backend issues: the real one by default. Returns 0 or -errno. Injectable
 * so the request/retry logic can be tested where no SNP device exists.
 */
typedef int (*snp_ioctl_fn)(int fd, unsigned long request, void *arg, void *userdata);

struct snp_ioctl_ops {
	snp_ioctl_fn ioctl;
	void *userdata;
	unsigned busy_sleep_ms; /* pause between retries of a BUSY answer */
};

/* The default: ioctl(2), retried on EINTR; 100 ms BUSY pause. */
extern const struct snp_ioctl_ops snp_ioctl_ops_kernel;

/*
 * What differs between configfs and a plain directory tree: on configfs, mkdir creates the
 * entry WITH its attribute files, rmdir removes a populated entry, and each write to an
 * attribute (inblob, privlevel) bumps "generation". Tests emulate exactly that over a temp dir.
 * Every field may be NULL (configfs: plain mkdir(2)/rmdir(2), nothing to do after a write).
 */
struct snp_tsm_ops {
	int (*mkdir_entry)(const char *path, void *userdata); /* 0 or -errno */
	int (*rmdir_entry)(const char *path, void *userdata); /* 0 or -errno */
	void (*attr_written)(const char *entry, const char *attr, void *userdata);
	void *userdata;
};

struct snp_source;

struct snp_source_backend {
	int (*get_report)(struct snp_source *s, const uint8_t report_data[64],
	                  uint8_t report[SNP_REPORT_SIZE], struct snp_cert_table *certs,
	                  struct skr_error *err);
	void (*close)(struct snp_source *s);
};

struct snp_source {
	enum snp_source_kind kind;
	const struct snp_source_backend *backend;
	uint32_t vmpl;
	char *path; /* device node or configfs report directory, for messages */

	/* sev-guest, sev */
	int fd;
	struct snp_ioctl_ops io;

	/* configfs-tsm */
	struct snp_tsm_ops tsm;

	/* virtual */
	struct snp_virtual *virt;
};

/*
 * Allocate a source with no backend yet (fd = -1); a backend's open function then fills it in
 * and snp_source_free() releases whatever it set. Each backend open function owns the message.
 */
struct snp_source *snp_source_alloc(enum snp_source_kind kind, uint32_t vmpl);

/* Path under @root (NULL = "/"): "<root>/<rel>" with one '/', malloc'ed; NULL on ENOMEM. */
char *snp_source_path(const char *root, const char *rel);

/*
 * Parse the certificate table a platform returned into @certs (left empty when @buf is all
 * zero or malformed: the certificates are optional and come from the untrusted host).
 */
void snp_source_certs_parse(const char *who, const uint8_t *buf, size_t len,
                            struct snp_cert_table *certs);

/* open(2) a device node O_RDWR; the fd, or a negative errno with the reason and the fix. */
int snp_source_device_open(const char *dev, struct skr_error *err);

/* ---- /dev/sev-guest ------------------------------------------------------------------------- */

int snp_source_sev_guest_open(struct snp_source *s, const char *dev, struct skr_error *err);

void snp_report_req_build(struct snp_report_req *req, const uint8_t report_data[64], uint32_t vmpl);

/*
 * Validate a MSG_REPORT_RSP of @len bytes: STATUS 0 and REPORT_SIZE 1184; copy the report out.
 * -EIO with the firmware status named, -EPROTO for a malformed response.
 */
int snp_msg_report_rsp_check(const uint8_t *rsp, size_t len, uint8_t report[SNP_REPORT_SIZE],
                             struct skr_error *err);

/* "fw_error 0x16 (INVALID_PARAM), vmm_error 1 (INVALID_LEN)" into @buf. */
void snp_exitinfo2_describe(uint64_t exitinfo2, char *buf, size_t len);

/*
 * The whole /dev/sev-guest exchange on @fd: SNP_GET_EXT_REPORT with a certificate buffer
 * (16 KiB, grown once to what the kernel asks for on INVALID_LEN, at most 64 KiB), falling back
 * to SNP_GET_REPORT when the kernel lacks EXT_REPORT (ENOTTY) or refuses the request before
 * any firmware call (EINVAL, fw_error 0xFFFFFFFF); BUSY is retried a few times. ENOTTY from
 * GET_REPORT too is reported as a disabled VMPCK. @certs may be NULL (then plain
 * SNP_GET_REPORT).
 */
int snp_sev_guest_fetch(int fd, const struct snp_ioctl_ops *io, const uint8_t report_data[64],
                        uint32_t vmpl, uint8_t report[SNP_REPORT_SIZE],
                        struct snp_cert_table *certs, struct skr_error *err);

#define SNP_CERTS_BUF_INITIAL (4 * 4096)
#define SNP_CERTS_BUF_MAX (16 * 4096)
#define SNP_BUSY_RETRIES 5

/* ---- legacy /dev/sev ------------------------------------------------------------------------ */

int snp_source_sev_open(struct snp_source *s, const char *dev, struct skr_error *err);

void sev_snp_legacy_request_build(struct sev_snp_guest_request *g, struct snp_report_req *req,
                                  uint8_t rsp[SEV_SNP_LEGACY_RESPONSE_LEN]);

int snp_sev_legacy_fetch(int fd, const struct snp_ioctl_ops *io, const uint8_t report_data[64],
                         uint32_t vmpl, uint8_t report[SNP_REPORT_SIZE], struct skr_error *err);

/* ---- configfs-tsm --------------------------------------------------------------------------- */

#define SNP_TSM_REPORT_DIR "sys/kernel/config/tsm/report"

/*
 * 0 when @report_dir is a configfs-tsm report directory whose provider is sev_guest (probed
 * with a short-lived entry), -ENODEV when it is absent, -ENOTSUP for another provider.
 */
int snp_tsm_probe(const char *report_dir, const struct snp_tsm_ops *ops, struct skr_error *err);

/* Make @s a configfs-tsm source under @root (NULL = "/"); @ops NULL = real configfs. */
int snp_source_tsm_open(struct snp_source *s, const char *root, const struct snp_tsm_ops *ops,
                        struct skr_error *err);
