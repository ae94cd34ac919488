/* SPDX-License-Identifier: MIT */
/*
 * Report sources (§2). No SNP hardware here, so:
 *  - the kernel ABI structs are checked against the spec's sizes, offsets and ioctl numbers;
 *  - AUTO detection runs against temp roots (nothing present, plain files as device nodes);
 *  - /dev/sev-guest and /dev/sev run their real request/retry/response code against an injected
 *    ioctl that plays the kernel's part (success, BUSY, INVALID_LEN, ENOTTY, bad status);
 *  - configfs-tsm runs its real file I/O against a temp directory. A plain directory differs
 *    from configfs in exactly three ways, and the fake (struct fake_tsm) emulates those and
 *    nothing else: mkdir creates the entry's attribute files, a write to inblob/privlevel bumps
 *    generation and (re)generates outblob from them, and rmdir removes a populated entry.
 *    The backend takes these through struct snp_tsm_ops, which is NULL (plain syscalls) in
 *    production.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cleanup.h"
#include "fileio.h"
#include "snp_source_internal.h"

/* ---- helpers -------------------------------------------------------------------------------- */

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void write_text(const char *dir, const char *name, const void *data, size_t len)
{
	_cleanup_free_ char *path = path_join(dir, name);
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	if (len)
		assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void write_str(const char *dir, const char *name, const char *s)
{
	write_text(dir, name, s, strlen(s));
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void rm_rf(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static char *make_root(void)
{
	char *root = strdup("/tmp/skr-test-source-XXXXXX");

	assert_non_null(root);
	assert_non_null(mkdtemp(root));
	return root;
}

static size_t dir_entries(const char *path)
{
	_cleanup_free_ char *cmd = NULL;
	size_t n = 0;
	FILE *p;
	char line[512];

	assert_true(asprintf(&cmd, "ls -A '%s'", path) > 0);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p))
		n++;
	pclose(p);
	return n;
}

/* A v3 Milan report answering @report_data at @vmpl, as firmware would produce it. */
static void make_report(const uint8_t report_data[64], uint32_t vmpl, uint8_t out[SNP_REPORT_SIZE])
{
	struct snp_report r = {
	        .version = 3,
	        .policy = 0x30000,
	        .vmpl = vmpl,
	        .signature_algo = SNP_SIG_ALGO_ECDSA_P384_SHA384,
	        .reported_tcb = UINT64_C(0x7308000000000003),
	        .cpuid_fam_id = 0x19,
	        .cpuid_mod_id = 0x01,
	};

	memcpy(r.report_data, report_data, 64);
	memset(r.chip_id, 0xC1, sizeof(r.chip_id));
	memset(r.signature_r, 0x5A, sizeof(r.signature_r));
	snp_report_serialize(&r, out);
}

static void test_report_data(uint8_t rd[64], uint8_t seed)
{
	for (int i = 0; i < 64; i++)
		rd[i] = (uint8_t)(seed + 3 * i);
}

/* ---- certificate table (§2.4) built by hand from AMD's published Milan ASK and ARK ---------- */

static const uint8_t guid_ask[16] = {0x4a, 0xb7, 0xb3, 0x79, 0xbb, 0xac, 0x4f, 0xe4,
                                     0xa0, 0x2f, 0x05, 0xae, 0xf3, 0x27, 0xc7, 0x82};
static const uint8_t guid_ark[16] = {0xc0, 0xb4, 0x06, 0xa4, 0xa8, 0x03, 0x49, 0x52,
                                     0x97, 0x43, 0x3f, 0xb6, 0x01, 0x4c, 0xd0, 0xae};

struct der {
	uint8_t *data;
	int len;
};

static struct der milan_ask, milan_ark;
static uint8_t *cert_table;
static size_t cert_table_len;

static void load_milan_roots(void)
{
	_cleanup_free_ char *path = NULL;
	const char *td = getenv("SKR_TESTDATA");
	FILE *f;
	X509 *ask, *ark;

	assert_non_null(td);
	assert_true(asprintf(&path, "%s/amd_roots/ask_ark_milan.pem", td) > 0);
	f = fopen(path, "r");
	assert_non_null(f);
	ask = PEM_read_X509(f, NULL, NULL, NULL);
	ark = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(ask);
	assert_non_null(ark);
	milan_ask.data = NULL;
	milan_ask.len = i2d_X509(ask, &milan_ask.data);
	milan_ark.data = NULL;
	milan_ark.len = i2d_X509(ark, &milan_ark.data);
	X509_free(ask);
	X509_free(ark);
	assert_true(milan_ask.len > 0 && milan_ark.len > 0);

	/* Two entries + the all-zero terminator, then the DER blobs; padded to a page. */
	size_t hdr = 3 * 24, off_ask = hdr, off_ark = off_ask + (size_t)milan_ask.len;
	size_t used = off_ark + (size_t)milan_ark.len;

	cert_table_len = (used + 4095) & ~(size_t)4095;
	cert_table = calloc(1, cert_table_len);
	assert_non_null(cert_table);
	memcpy(cert_table, guid_ask, 16);
	put_le32(cert_table + 16, (uint32_t)off_ask);
	put_le32(cert_table + 20, (uint32_t)milan_ask.len);
	memcpy(cert_table + 24, guid_ark, 16);
	put_le32(cert_table + 40, (uint32_t)off_ark);
	put_le32(cert_table + 44, (uint32_t)milan_ark.len);
	memcpy(cert_table + off_ask, milan_ask.data, (size_t)milan_ask.len);
	memcpy(cert_table + off_ark, milan_ark.data, (size_t)milan_ark.len);
}

static int group_setup(void **state)
{
	load_milan_roots();
	return 0;
}

static int group_teardown(void **state)
{
	OPENSSL_free(milan_ask.data);
	OPENSSL_free(milan_ark.data);
	free(cert_table);
	return 0;
}

static void check_certs(const struct snp_cert_table *t)
{
	const struct snp_cert_table_entry *e;

	assert_int_equal(t->count, 2);
	e = snp_cert_table_find(t, SNP_CERT_ASK);
	assert_non_null(e);
	assert_int_equal(e->len, milan_ask.len);
	assert_memory_equal(e->data, milan_ask.data, e->len);
	e = snp_cert_table_find(t, SNP_CERT_ARK);
	assert_non_null(e);
	assert_memory_equal(e->data, milan_ark.data, e->len);
}

/* ---- ABI (§2.2, §2.3) ----------------------------------------------------------------------- */

static void test_abi_layout(void **state)
{
	assert_int_equal(sizeof(struct snp_report_req), 96);
	assert_int_equal(offsetof(struct snp_report_req, vmpl), 64);
	assert_int_equal(sizeof(struct snp_report_resp), 4000);
	assert_int_equal(sizeof(struct snp_guest_request_ioctl), 32);
	assert_int_equal(offsetof(struct snp_guest_request_ioctl, req_data), 8);
	assert_int_equal(offsetof(struct snp_guest_request_ioctl, resp_data), 16);
	assert_int_equal(offsetof(struct snp_guest_request_ioctl, exitinfo2), 24);
	assert_int_equal(sizeof(struct snp_ext_report_req), 112);
	assert_int_equal(offsetof(struct snp_ext_report_req, certs_address), 96);
	assert_int_equal(offsetof(struct snp_ext_report_req, certs_len), 104);
	assert_int_equal(sizeof(struct sev_snp_guest_request), 40);
	assert_int_equal(offsetof(struct sev_snp_guest_request, rsp_msg_type), 1);
	assert_int_equal(offsetof(struct sev_snp_guest_request, msg_version), 2);
	assert_int_equal(offsetof(struct sev_snp_guest_request, request_len), 4);
	assert_int_equal(offsetof(struct sev_snp_guest_request, request_uaddr), 8);
	assert_int_equal(offsetof(struct sev_snp_guest_request, response_len), 16);
	assert_int_equal(offsetof(struct sev_snp_guest_request, response_uaddr), 24);
	assert_int_equal(offsetof(struct sev_snp_guest_request, error), 32);

	/* fw_error is the low half of exitinfo2, vmm_error the high half. */
	struct snp_guest_request_ioctl g = {.exitinfo2 = UINT64_C(0x0000000200000016)};
	assert_int_equal(g.fw_error, 0x16);
	assert_int_equal(g.vmm_error, 2);
}

static void test_abi_ioctl_numbers(void **state)
{
	/* The decimal values the Go anchor hard-codes (§2.2, §2.3). */
	assert_int_equal(SNP_GET_REPORT, 3223343872UL);
	assert_int_equal(SEV_SNP_GUEST_MSG_REPORT, 3223868161UL);
	assert_int_equal(SNP_GET_REPORT, 0xC0205300UL);
	assert_int_equal(SNP_GET_DERIVED_KEY, 0xC0205301UL);
	assert_int_equal(SNP_GET_EXT_REPORT, 0xC0205302UL);
	assert_int_equal(SEV_SNP_GUEST_MSG_REQUEST, 0xC0285300UL);
	assert_int_equal(SEV_SNP_GUEST_MSG_KEY, 0xC0285302UL);
}

static void test_exitinfo2_describe(void **state)
{
	char buf[128];

	snp_exitinfo2_describe(UINT64_C(0x0000000200000016), buf, sizeof(buf));
	assert_string_equal(buf, "fw_error 0x16 (INVALID_PARAM), vmm_error 0x2 (BUSY)");
	snp_exitinfo2_describe(UINT64_C(0x0000000100000000), buf, sizeof(buf));
	assert_string_equal(buf, "fw_error 0x0 (none), vmm_error 0x1 (INVALID_LEN)");
}

/* ---- kinds and AUTO ------------------------------------------------------------------------- */

static void test_kind_names(void **state)
{
	static const char *const names[] = {"auto", "sev-guest", "sev", "configfs-tsm", "virtual"};
	enum snp_source_kind k;

	for (int i = SNP_SOURCE_AUTO; i <= SNP_SOURCE_VIRTUAL; i++) {
		assert_string_equal(snp_source_kind_name((enum snp_source_kind)i), names[i]);
		assert_int_equal(snp_source_kind_from_string(names[i], &k), 0);
		assert_int_equal(k, i);
	}
	assert_int_equal(snp_source_kind_from_string("SEV-Guest", &k), 0);
	assert_int_equal(k, SNP_SOURCE_SEV_GUEST);
	assert_int_equal(snp_source_kind_from_string("tsm", &k), -EINVAL);
	assert_int_equal(snp_source_kind_from_string("", &k), -EINVAL);
	assert_string_equal(snp_source_kind_name((enum snp_source_kind)99), "unknown");
}

/* AUTO never falls back to the virtual platform, even when one is configured. */
static void test_auto_nothing_present(void **state)
{
	_cleanup_free_ char *root = make_root();
	struct snp_source_config cfg = {
	        .kind = SNP_SOURCE_AUTO, .root = root, .virtual_dir = "/nonexistent-virtual"};
	struct snp_source *s = NULL;
	struct skr_error err = {0};

	assert_int_equal(snp_source_open(&cfg, &s, &err), -ENODEV);
	assert_null(s);
	assert_string_equal(err.msg, "no SEV-SNP device: /dev/sev-guest, /dev/sev and configfs-tsm "
	                             "absent; set the attestation source");
	rm_rf(root);
}

/* configfs-tsm present but refusing us, nothing else: the reason is in the message. */
static void test_auto_tsm_unusable(void **state)
{
	_cleanup_free_ char *root = make_root();
	_cleanup_free_ char *tsm = path_join(root, SNP_TSM_REPORT_DIR);
	struct snp_source_config cfg = {.kind = SNP_SOURCE_AUTO, .root = root};
	struct snp_source *s = NULL;
	struct skr_error err = {0};

	(void)state;
	/* Plain directories: the probe entry has no provider file (as under another TSM). */
	assert_int_equal(mkdir_p(tsm, 0700), 0);
	assert_int_equal(snp_source_open(&cfg, &s, &err), -ENODEV);
	assert_null(s);
	assert_non_null(strstr(err.msg, "no SEV-SNP device: /dev/sev-guest and /dev/sev absent, "
	                                "and configfs-tsm is present but not usable ("));
	assert_non_null(strstr(err.msg, "provider is missing"));
	assert_null(strstr(err.msg, "configfs-tsm absent"));
	rm_rf(root);
}

/*
 * Plain files stand in for the device nodes: open(2) works on them and every ioctl fails with
 * ENOTTY, which exercises the order and the error reporting of the real backends.
 */
static void test_auto_order(void **state)
{
	_cleanup_free_ char *root = make_root();
	_cleanup_free_ char *dev = path_join(root, "dev");
	_cleanup_free_ char *tsm = path_join(root, SNP_TSM_REPORT_DIR);
	struct snp_source_config cfg = {.kind = SNP_SOURCE_AUTO, .root = root};
	struct snp_source *s = NULL;
	struct skr_error err = {0};
	uint8_t rd[64] = {0}, report[SNP_REPORT_SIZE];

	assert_int_equal(mkdir(dev, 0700), 0);
	write_str(dev, "sev", "");
	assert_int_equal(snp_source_open(&cfg, &s, &err), 0);
	assert_int_equal(snp_source_kind_of(s), SNP_SOURCE_SEV);
	assert_int_equal(snp_source_get_report(s, rd, report, NULL, &err), -ENOTTY);
	assert_non_null(strstr(err.msg, "SEV_SNP_GUEST_MSG_REPORT not supported"));
	snp_source_free(s);

	/* /dev/sev-guest wins over /dev/sev; EXT_REPORT's ENOTTY falls back to GET_REPORT. */
	write_str(dev, "sev-guest", "");
	skr_error_clear(&err);
	assert_int_equal(snp_source_open(&cfg, &s, &err), 0);
	assert_int_equal(snp_source_kind_of(s), SNP_SOURCE_SEV_GUEST);
	struct snp_cert_table certs;
	assert_int_equal(snp_source_get_report(s, rd, report, &certs, &err), -ENOTTY);
	assert_non_null(strstr(err.msg, "sev-guest report: ioctl SNP_GET_REPORT failed"));
	assert_int_equal(certs.count, 0);
	snp_source_free(s);

	/* A configfs-tsm directory whose entries have no sev_guest provider is passed over, and
	 * the probe entry is removed again. */
	assert_int_equal(mkdir_p(tsm, 0700), 0);
	skr_error_clear(&err);
	assert_int_equal(snp_source_open(&cfg, &s, &err), 0);
	assert_int_equal(snp_source_kind_of(s), SNP_SOURCE_SEV_GUEST);
	assert_int_equal(dir_entries(tsm), 0);
	snp_source_free(s);
	rm_rf(root);
}

static void test_explicit_kinds_fail_clearly(void **state)
{
	_cleanup_free_ char *root = make_root();
	struct snp_source *s = NULL;
	struct skr_error err = {0};
	struct snp_source_config cfg = {.kind = SNP_SOURCE_VIRTUAL, .root = root};

	assert_int_equal(snp_source_open(&cfg, &s, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "virtual_dir"));

	cfg.kind = SNP_SOURCE_SEV_GUEST;
	skr_error_clear(&err);
	assert_int_equal(snp_source_open(&cfg, &s, &err), -ENODEV);
	assert_non_null(strstr(err.msg, "/dev/sev-guest: no such device"));

	cfg.kind = SNP_SOURCE_TSM;
	skr_error_clear(&err);
	assert_int_equal(snp_source_open(&cfg, &s, &err), -ENODEV);
	assert_non_null(strstr(err.msg, "sys/kernel/config/tsm/report absent"));

	cfg.kind = SNP_SOURCE_AUTO;
	cfg.vmpl = 4;
	skr_error_clear(&err);
	assert_int_equal(snp_source_open(&cfg, &s, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "vmpl 4"));
	assert_null(s);
	rm_rf(root);
}

/* The virtual kind end to end: a signed report that verifies against the platform's ARK. */
static void test_virtual_source(void **state)
{
	_cleanup_free_ char *root = make_root();
	_cleanup_free_ char *dir = path_join(root, "platform");
	struct snp_virtual_params params;
	struct snp_source_config cfg = {.kind = SNP_SOURCE_VIRTUAL, .vmpl = 0};
	struct snp_source *s = NULL;
	struct snp_virtual *v = NULL;
	struct snp_trust_store *trust = NULL;
	struct snp_cert_chain *chain = NULL;
	struct snp_cert_table certs;
	struct snp_report parsed;
	struct skr_error err = {0};
	uint8_t rd[64], report[SNP_REPORT_SIZE];
	const char *ark;

	snp_virtual_params_default(&params);
	assert_int_equal(snp_virtual_create(dir, &params, &err), 0);
	cfg.virtual_dir = dir;
	assert_int_equal(snp_source_open(&cfg, &s, &err), 0);
	assert_int_equal(snp_source_kind_of(s), SNP_SOURCE_VIRTUAL);

	test_report_data(rd, 5);
	if (snp_source_get_report(s, rd, report, &certs, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(snp_report_parse(report, sizeof(report), &parsed, &err), 0);
	assert_memory_equal(parsed.report_data, rd, 64);
	assert_int_equal(parsed.vmpl, 0);
	assert_non_null(snp_cert_table_find(&certs, SNP_CERT_VCEK));

	assert_int_equal(snp_virtual_open(dir, &v, &err), 0);
	ark = snp_virtual_ark_pem(v);
	assert_int_equal(snp_trust_store_new(&trust, &err), 0);
	assert_int_equal(snp_trust_store_add_pem(trust, ark, strlen(ark), &err), 0);
	assert_int_equal(snp_cert_chain_from_table(&certs, &chain, &err), 0);
	if (snp_report_verify(report, sizeof(report), chain, trust, &err) < 0)
		fail_msg("%s", err.msg);

	snp_cert_chain_free(chain);
	snp_trust_store_free(trust);
	snp_virtual_free(v);
	snp_cert_table_clear(&certs);
	snp_source_free(s);
	rm_rf(root);
}

/* ---- /dev/sev-guest against a scripted kernel ----------------------------------------------- */

struct step {
	int ret;         /* ioctl result: 0 or -errno */
	uint32_t fw;     /* exitinfo2 low half on failure */
	uint32_t vmm;    /* exitinfo2 high half on failure */
	uint32_t need;   /* INVALID_LEN: certs_len written back */
	uint32_t status; /* MSG_REPORT_RSP STATUS on success */
	uint32_t size;   /* MSG_REPORT_RSP REPORT_SIZE on success; 0 = 1184 */
	bool certs;      /* fill the certificate buffer on success */
};

struct fake_kernel {
	const struct step *steps;
	size_t n, calls;
	unsigned long requests[16];
	uint32_t certs_len[16];
	uint32_t vmpl;
	uint8_t report_data[64];
};

static int fake_sev_guest_ioctl(int fd, unsigned long request, void *arg, void *userdata)
{
	struct fake_kernel *k = userdata;
	struct snp_guest_request_ioctl *g = arg;
	const struct step *st;
	const struct snp_report_req *req;
	uint8_t *resp = (uint8_t *)(uintptr_t)g->resp_data;

	assert_true(k->calls < k->n);
	st = &k->steps[k->calls];
	k->requests[k->calls] = request;
	assert_int_equal(g->msg_version, 1);
	assert_int_equal(g->exitinfo2, 0);
	if (request == SNP_GET_EXT_REPORT) {
		struct snp_ext_report_req *ext = (void *)(uintptr_t)g->req_data;

		req = &ext->data;
		k->certs_len[k->calls] = ext->certs_len;
		/* The kernel's rule: a page multiple, and a zeroed buffer we can write into. */
		assert_int_equal(ext->certs_len % 4096, 0);
		assert_true(ext->certs_len <= SNP_CERTS_BUF_MAX);
		if (st->need)
			ext->certs_len = st->need;
		if (st->ret == 0 && st->certs) {
			assert_true(cert_table_len <= ext->certs_len);
			memcpy((void *)(uintptr_t)ext->certs_address, cert_table, cert_table_len);
		}
	} else {
		assert_int_equal(request, SNP_GET_REPORT);
		req = (const void *)(uintptr_t)g->req_data;
	}
	k->calls++;

	assert_memory_equal(req->user_data, k->report_data, 64);
	assert_int_equal(req->vmpl, k->vmpl);
	for (size_t i = 0; i < sizeof(req->rsvd); i++)
		assert_int_equal(req->rsvd[i], 0);

	if (st->ret) {
		g->exitinfo2 = (uint64_t)st->vmm << 32 | st->fw;
		return st->ret;
	}
	put_le32(resp, st->status);
	put_le32(resp + 4, st->size ? st->size : SNP_REPORT_SIZE);
	make_report(req->user_data, req->vmpl, resp + 0x20);
	return 0;
}

struct guest_case {
	const char *name;
	struct step steps[8];
	size_t n;
	bool want_certs;
	int ret;
	const char *msg;           /* substring of the error */
	unsigned long requests[8]; /* expected ioctl sequence */
	uint32_t certs_len[8];     /* expected certs_len per EXT call (0: not EXT) */
	size_t expect_cert_count;  /* 2 = the Milan ASK+ARK table */
};

#define EXT SNP_GET_EXT_REPORT
#define STD SNP_GET_REPORT
#define BUSY_STEP                                                                                  \
	{                                                                                          \
		.ret = -EAGAIN, .vmm = SNP_GUEST_VMM_ERR_BUSY                                      \
	}

static const struct guest_case guest_cases[] = {
        {"ext, no certs from host", {{0}}, 1, true, 0, NULL, {EXT}, {16384}, 0},
        {"ext with certs", {{.certs = true}}, 1, true, 0, NULL, {EXT}, {16384}, 2},
        {"no cert table wanted", {{0}}, 1, false, 0, NULL, {STD}, {0}, 0},
        {"invalid_len grows once",
         {{.ret = -EIO, .vmm = SNP_GUEST_VMM_ERR_INVALID_LEN, .need = 20000}, {.certs = true}},
         2,
         true,
         0,
         NULL,
         {EXT, EXT},
         {16384, 20480},
         2},
        {"invalid_len beyond cap → plain report",
         {{.ret = -EIO, .vmm = SNP_GUEST_VMM_ERR_INVALID_LEN, .need = 100000}, {0}},
         2,
         true,
         0,
         NULL,
         {EXT, STD},
         {16384, 0},
         0},
        {"invalid_len twice",
         {{.ret = -EIO, .vmm = SNP_GUEST_VMM_ERR_INVALID_LEN, .need = 20000},
          {.ret = -EIO, .vmm = SNP_GUEST_VMM_ERR_INVALID_LEN, .need = 40000}},
         2,
         true,
         -EPROTO,
         "refused as too small",
         {EXT, EXT},
         {16384, 20480},
         0},
        {"no ext_report in kernel",
         {{.ret = -ENOTTY}, {0}},
         2,
         true,
         0,
         NULL,
         {EXT, STD},
         {16384, 0},
         0},
        {"einval before any firmware call → plain report",
         {{.ret = -EINVAL, .fw = SNP_FW_ERR_NO_CALL}, {0}},
         2,
         true,
         0,
         NULL,
         {EXT, STD},
         {16384, 0},
         0},
        {"einval from the firmware is not retried",
         {{.ret = -EINVAL, .fw = 0x16}},
         1,
         true,
         -EINVAL,
         "ioctl SNP_GET_EXT_REPORT failed: Invalid argument; fw_error 0x16 (INVALID_PARAM)",
         {EXT},
         {16384},
         0},
        {"vmpck disabled: enotty for both",
         {{.ret = -ENOTTY}, {.ret = -ENOTTY}},
         2,
         true,
         -ENOTTY,
         "ioctl SNP_GET_REPORT failed: the kernel refuses every guest request on this device: "
         "the guest's VMPCK was disabled",
         {EXT, STD},
         {16384, 0},
         0},
        {"busy then ok",
         {BUSY_STEP, BUSY_STEP, {.certs = true}},
         3,
         true,
         0,
         NULL,
         {EXT, EXT, EXT},
         {16384, 16384, 16384},
         2},
        {"busy forever",
         {BUSY_STEP, BUSY_STEP, BUSY_STEP, BUSY_STEP, BUSY_STEP, BUSY_STEP},
         6,
         false,
         -EAGAIN,
         "vmm_error 0x2 (BUSY) (host still busy after retries)",
         {STD, STD, STD, STD, STD, STD},
         {0},
         0},
        {"firmware error",
         {{.ret = -EIO, .fw = 0x27}},
         1,
         false,
         -EIO,
         "ioctl SNP_GET_REPORT failed: Input/output error; fw_error 0x27 (INVALID_KEY)",
         {STD},
         {0},
         0},
        {"status invalid_param",
         {{.status = 0x16}},
         1,
         true,
         -EIO,
         "MSG_REPORT_RSP STATUS 0x16 (INVALID_PARAM",
         {EXT},
         {16384},
         0},
        {"wrong report_size",
         {{.size = 1000}},
         1,
         true,
         -EPROTO,
         "MSG_REPORT_RSP REPORT_SIZE is 1000, expected 1184",
         {EXT},
         {16384},
         0},
};

static void test_sev_guest_fetch(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(guest_cases); i++) {
		const struct guest_case *c = &guest_cases[i];
		struct fake_kernel k = {.steps = c->steps, .n = c->n, .vmpl = 1};
		struct snp_ioctl_ops io = {.ioctl = fake_sev_guest_ioctl, .userdata = &k};
		uint8_t report[SNP_REPORT_SIZE], expect[SNP_REPORT_SIZE];
		struct snp_cert_table certs = {0};
		struct skr_error err = {0};
		int r;

		test_report_data(k.report_data, (uint8_t)i);
		r = snp_sev_guest_fetch(-1, &io, k.report_data, k.vmpl, report,
		                        c->want_certs ? &certs : NULL, &err);
		if (r != c->ret)
			fail_msg("%s: returned %d (%s), expected %d", c->name, r, err.msg, c->ret);
		if (c->msg && !strstr(err.msg, c->msg))
			fail_msg("%s: '%s' lacks '%s'", c->name, err.msg, c->msg);
		if (k.calls != c->n)
			fail_msg("%s: %zu ioctls, expected %zu", c->name, k.calls, c->n);
		for (size_t j = 0; j < c->n; j++) {
			assert_int_equal(k.requests[j], c->requests[j]);
			if (c->requests[j] == EXT)
				assert_int_equal(k.certs_len[j], c->certs_len[j]);
		}
		if (r == 0) {
			make_report(k.report_data, k.vmpl, expect);
			assert_memory_equal(report, expect, SNP_REPORT_SIZE);
		}
		assert_int_equal(certs.count, c->expect_cert_count);
		if (c->expect_cert_count)
			check_certs(&certs);
		snp_cert_table_clear(&certs);
	}
}

static void test_msg_report_rsp_check(void **state)
{
	uint8_t rsp[SNP_MSG_REPORT_RSP_MIN_LEN] = {0}, report[SNP_REPORT_SIZE], rd[64];
	struct skr_error err = {0};

	test_report_data(rd, 7);
	put_le32(rsp + 4, SNP_REPORT_SIZE);
	make_report(rd, 0, rsp + 0x20);
	assert_int_equal(snp_msg_report_rsp_check(rsp, sizeof(rsp), report, &err), 0);
	assert_memory_equal(report, rsp + 0x20, SNP_REPORT_SIZE);

	assert_int_equal(snp_msg_report_rsp_check(rsp, sizeof(rsp) - 1, report, &err), -EPROTO);
	assert_string_equal(err.msg, "MSG_REPORT_RSP is 1215 bytes, need at least 1216");

	skr_error_clear(&err);
	put_le32(rsp, 0x27);
	assert_int_equal(snp_msg_report_rsp_check(rsp, sizeof(rsp), report, &err), -EIO);
	assert_non_null(strstr(err.msg, "STATUS 0x27 (INVALID_KEY)"));
}

/* ---- legacy /dev/sev ------------------------------------------------------------------------ */

struct fake_legacy {
	int ret;
	uint32_t fw_error, status;
	unsigned calls;
	uint8_t report_data[64];
};

static int fake_sev_ioctl(int fd, unsigned long request, void *arg, void *userdata)
{
	struct fake_legacy *k = userdata;
	struct sev_snp_guest_request *g = arg;
	const struct snp_report_req *req = (const void *)(uintptr_t)g->request_uaddr;
	uint8_t *rsp = (uint8_t *)(uintptr_t)g->response_uaddr;

	k->calls++;
	assert_int_equal(request, SEV_SNP_GUEST_MSG_REPORT);
	assert_int_equal(g->req_msg_type, 5);
	assert_int_equal(g->rsp_msg_type, 6);
	assert_int_equal(g->msg_version, 1);
	assert_int_equal(g->request_len, 96);
	assert_int_equal(g->response_len, 1280);
	assert_memory_equal(req->user_data, k->report_data, 64);
	assert_int_equal(req->vmpl, 0);
	if (k->ret)
		return k->ret;
	g->error = k->fw_error;
	put_le32(rsp, k->status);
	put_le32(rsp + 4, SNP_REPORT_SIZE);
	make_report(req->user_data, req->vmpl, rsp + 0x20);
	return 0;
}

static void test_sev_legacy(void **state)
{
	struct fake_legacy k = {0};
	struct snp_ioctl_ops io = {.ioctl = fake_sev_ioctl, .userdata = &k};
	uint8_t report[SNP_REPORT_SIZE], expect[SNP_REPORT_SIZE];
	struct skr_error err = {0};
	struct sev_snp_guest_request g;
	struct snp_report_req req;
	uint8_t rsp[SEV_SNP_LEGACY_RESPONSE_LEN];

	/* The request as built, byte for byte where it matters. */
	sev_snp_legacy_request_build(&g, &req, rsp);
	assert_int_equal(((uint8_t *)&g)[0], 5);
	assert_int_equal(((uint8_t *)&g)[1], 6);
	assert_int_equal(((uint8_t *)&g)[2], 1);
	assert_int_equal(g.request_uaddr, (uintptr_t)&req);
	assert_int_equal(g.response_uaddr, (uintptr_t)rsp);

	test_report_data(k.report_data, 42);
	assert_int_equal(snp_sev_legacy_fetch(-1, &io, k.report_data, 0, report, &err), 0);
	make_report(k.report_data, 0, expect);
	assert_memory_equal(report, expect, SNP_REPORT_SIZE);

	k.status = 0x16;
	assert_int_equal(snp_sev_legacy_fetch(-1, &io, k.report_data, 0, report, &err), -EIO);
	assert_non_null(strstr(err.msg, "STATUS 0x16"));

	skr_error_clear(&err);
	k.status = 0;
	k.fw_error = 0x25;
	assert_int_equal(snp_sev_legacy_fetch(-1, &io, k.report_data, 0, report, &err), -EIO);
	assert_non_null(strstr(err.msg, "firmware error 0x25"));

	skr_error_clear(&err);
	k.ret = -ENOTTY;
	assert_int_equal(snp_sev_legacy_fetch(-1, &io, k.report_data, 0, report, &err), -ENOTTY);
	assert_non_null(strstr(err.msg, "not the 5.15 SNP guest driver"));
	assert_int_equal(k.calls, 4);
}

/* ---- configfs-tsm over a temp directory ----------------------------------------------------- */

struct fake_tsm {
	const char *provider;
	int floor;          /* privlevel_floor; -1: attribute absent */
	bool no_privlevel;  /* kernel without privlevel */
	bool no_auxblob;    /* host supplied no certificates */
	size_t outblob_len; /* 0: a whole report */
	bool ignore_inblob; /* a broken provider answering something else */
	int other_writer;   /* cycles in which another writer bumps generation */
	/* observed */
	unsigned mkdirs, rmdirs, writes;
	uint8_t inblob[128];
	size_t inblob_len;
	char privlevel[16];
	bool huge_auxblob;
};

static void fake_read(const char *entry, const char *attr, char **out, size_t *len)
{
	_cleanup_free_ char *path = path_join(entry, attr);

	assert_int_equal(read_file(path, 1 << 20, out, len), 0);
}

static int fake_mkdir(const char *path, void *userdata)
{
	struct fake_tsm *f = userdata;
	char floor[16];

	if (mkdir(path, 0700) < 0)
		return -errno;
	f->mkdirs++;
	write_str(path, "provider", f->provider);
	write_str(path, "generation", "0\n");
	write_str(path, "inblob", "");
	write_str(path, "outblob", "");
	if (!f->no_privlevel)
		write_str(path, "privlevel", "");
	if (f->floor >= 0) {
		snprintf(floor, sizeof(floor), "%d\n", f->floor);
		write_str(path, "privlevel_floor", floor);
	}
	if (f->huge_auxblob) {
		/* A host table larger than any real one (over SNP_CERTS_BUF_MAX). */
		size_t n = SNP_CERTS_BUF_MAX + 4096;
		uint8_t *big = calloc(1, n);

		assert_non_null(big);
		memcpy(big, cert_table, cert_table_len);
		write_text(path, "auxblob", big, n);
		free(big);
	} else if (!f->no_auxblob) {
		write_text(path, "auxblob", cert_table, cert_table_len);
	}
	return 0;
}

/* What the kernel does on a write: bump generation; the report follows inblob/privlevel. */
static void fake_written(const char *entry, const char *attr, void *userdata)
{
	struct fake_tsm *f = userdata;
	_cleanup_free_ char *gen = NULL, *inblob = NULL, *priv = NULL;
	size_t len, in_len, priv_len = 0;
	char text[32];
	uint8_t rd[64] = {0}, report[SNP_REPORT_SIZE];
	unsigned long g;

	f->writes++;
	fake_read(entry, "generation", &gen, &len);
	g = strtoul(gen, NULL, 10) + 1;
	if (strcmp(attr, "inblob") == 0 && f->other_writer > 0) {
		f->other_writer--;
		g += 1;
	}
	snprintf(text, sizeof(text), "%lu\n", g);
	write_str(entry, "generation", text);

	fake_read(entry, "inblob", &inblob, &in_len);
	assert_int_equal(in_len, 64);
	if (!f->ignore_inblob)
		memcpy(rd, inblob, 64);
	if (!f->no_privlevel)
		fake_read(entry, "privlevel", &priv, &priv_len);
	make_report(rd, priv_len ? (uint32_t)strtoul(priv, NULL, 10) : 0, report);
	write_text(entry, "outblob", report, f->outblob_len ? f->outblob_len : SNP_REPORT_SIZE);
}

static int fake_rmdir(const char *path, void *userdata)
{
	struct fake_tsm *f = userdata;
	_cleanup_free_ char *in = NULL, *priv = NULL;
	size_t len;

	f->rmdirs++;
	fake_read(path, "inblob", &in, &f->inblob_len);
	assert_true(f->inblob_len <= sizeof(f->inblob));
	memcpy(f->inblob, in, f->inblob_len);
	if (!f->no_privlevel) {
		fake_read(path, "privlevel", &priv, &len);
		snprintf(f->privlevel, sizeof(f->privlevel), "%s", priv);
	}
	rm_rf(path);
	return 0;
}

struct tsm_env {
	char *root;
	char *report_dir;
	struct fake_tsm fake;
	struct snp_tsm_ops ops;
};

static void tsm_env_init(struct tsm_env *e)
{
	*e = (struct tsm_env){
	        .fake = {.provider = "sev_guest\n", .floor = 0},
	        .ops = {.mkdir_entry = fake_mkdir,
	                .rmdir_entry = fake_rmdir,
	                .attr_written = fake_written},
	};
	e->ops.userdata = &e->fake;
	e->root = make_root();
	e->report_dir = path_join(e->root, SNP_TSM_REPORT_DIR);
	assert_int_equal(mkdir_p(e->report_dir, 0700), 0);
}

static void tsm_env_done(struct tsm_env *e)
{
	/* Whatever happened, no entry is left behind. */
	assert_int_equal(dir_entries(e->report_dir), 0);
	assert_int_equal(e->fake.mkdirs, e->fake.rmdirs);
	rm_rf(e->root);
	free(e->root);
	free(e->report_dir);
}

static int tsm_run(struct tsm_env *e, uint32_t vmpl, uint8_t rd[64],
                   uint8_t report[SNP_REPORT_SIZE], struct snp_cert_table *certs,
                   struct skr_error *err)
{
	struct snp_source *s = snp_source_alloc(SNP_SOURCE_TSM, vmpl);
	int r;

	assert_non_null(s);
	r = snp_source_tsm_open(s, e->root, &e->ops, err);
	if (r == 0)
		r = snp_source_get_report(s, rd, report, certs, err);
	snp_source_free(s);
	return r;
}

static void test_tsm_report(void **state)
{
	struct tsm_env e;
	uint8_t rd[64], report[SNP_REPORT_SIZE], expect[SNP_REPORT_SIZE];
	struct snp_cert_table certs;
	struct skr_error err = {0};

	tsm_env_init(&e);
	test_report_data(rd, 9);
	assert_int_equal(tsm_run(&e, 0, rd, report, &certs, &err), 0);
	make_report(rd, 0, expect);
	assert_memory_equal(report, expect, SNP_REPORT_SIZE);
	check_certs(&certs);
	snp_cert_table_clear(&certs);
	/* One probe entry at open, one for the report; exactly 64 bytes went to inblob. */
	assert_int_equal(e.fake.mkdirs, 2);
	assert_int_equal(e.fake.inblob_len, 64);
	assert_memory_equal(e.fake.inblob, rd, 64);
	assert_string_equal(e.fake.privlevel, "0\n");
	assert_int_equal(e.fake.writes, 2);
	tsm_env_done(&e);
}

static void test_tsm_vmpl_and_no_auxblob(void **state)
{
	struct tsm_env e;
	uint8_t rd[64], report[SNP_REPORT_SIZE];
	struct snp_cert_table certs;
	struct snp_report parsed;
	struct skr_error err = {0};

	tsm_env_init(&e);
	e.fake.no_auxblob = true;
	test_report_data(rd, 1);
	assert_int_equal(tsm_run(&e, 2, rd, report, &certs, &err), 0);
	assert_int_equal(certs.count, 0);
	assert_int_equal(snp_report_parse(report, sizeof(report), &parsed, NULL), 0);
	assert_int_equal(parsed.vmpl, 2);
	assert_string_equal(e.fake.privlevel, "2\n");
	tsm_env_done(&e);

	/* An oversized auxblob costs the certificates (optional), not the report. */
	tsm_env_init(&e);
	e.fake.huge_auxblob = true;
	certs.count = 99;
	assert_int_equal(tsm_run(&e, 0, rd, report, &certs, &err), 0);
	assert_int_equal(certs.count, 0);
	assert_int_equal(snp_report_parse(report, sizeof(report), &parsed, NULL), 0);
	tsm_env_done(&e);

	/* An old kernel without privlevel: VMPL 0 works, another VMPL cannot be honoured. */
	tsm_env_init(&e);
	e.fake.no_privlevel = true;
	e.fake.floor = -1;
	assert_int_equal(tsm_run(&e, 0, rd, report, NULL, &err), 0);
	assert_int_equal(e.fake.writes, 1);
	assert_int_equal(tsm_run(&e, 1, rd, report, NULL, &err), -ENOTSUP);
	assert_non_null(strstr(err.msg, "no privlevel attribute"));
	tsm_env_done(&e);
}

struct tsm_fail_case {
	const char *name;
	void (*setup)(struct fake_tsm *f);
	uint32_t vmpl;
	int ret;
	const char *msg;
};

static void setup_tdx(struct fake_tsm *f)
{
	f->provider = "tdx_guest\n";
}
static void setup_floor(struct fake_tsm *f)
{
	f->floor = 1;
}
static void setup_short_outblob(struct fake_tsm *f)
{
	f->outblob_len = 1000;
}
static void setup_ignore_inblob(struct fake_tsm *f)
{
	f->ignore_inblob = true;
}
static void setup_other_writer(struct fake_tsm *f)
{
	f->other_writer = 2;
}

static const struct tsm_fail_case tsm_fail_cases[] = {
        {"tdx provider", setup_tdx, 0, -ENOTSUP,
         "configfs-tsm provider is 'tdx_guest', not 'sev_guest'"},
        {"vmpl below floor", setup_floor, 0, -EINVAL,
         "VMPL 0 requested but this guest runs at VMPL 1 (privlevel_floor); set vmpl to 1"},
        {"short outblob", setup_short_outblob, 0, -EPROTO, "outblob is 1000 bytes, expected 1184"},
        {"answer to another inblob", setup_ignore_inblob, 0, -EPROTO,
         "outblob REPORT_DATA differs from what was written"},
        {"another writer twice", setup_other_writer, 0, -EAGAIN,
         "generation went from 0 to 3 across our 2 writes: another writer"},
};

static void test_tsm_failures(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(tsm_fail_cases); i++) {
		const struct tsm_fail_case *c = &tsm_fail_cases[i];
		struct tsm_env e;
		uint8_t rd[64], report[SNP_REPORT_SIZE];
		struct snp_cert_table certs = {0}; /* untouched when open fails */
		struct skr_error err = {0};
		int r;

		tsm_env_init(&e);
		c->setup(&e.fake);
		test_report_data(rd, (uint8_t)i);
		r = tsm_run(&e, c->vmpl, rd, report, &certs, &err);
		if (r != c->ret || !strstr(err.msg, c->msg))
			fail_msg("%s: %d '%s', expected %d '%s'", c->name, r, err.msg, c->ret,
			         c->msg);
		assert_int_equal(certs.count, 0);
		tsm_env_done(&e);
	}
}

/* One clash is retried in a fresh entry. */
static void test_tsm_other_writer_once(void **state)
{
	struct tsm_env e;
	uint8_t rd[64], report[SNP_REPORT_SIZE], expect[SNP_REPORT_SIZE];
	struct skr_error err = {0};

	tsm_env_init(&e);
	e.fake.other_writer = 1;
	test_report_data(rd, 77);
	assert_int_equal(tsm_run(&e, 0, rd, report, NULL, &err), 0);
	make_report(rd, 0, expect);
	assert_memory_equal(report, expect, SNP_REPORT_SIZE);
	assert_int_equal(e.fake.mkdirs, 3); /* probe, clash, retry */
	tsm_env_done(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_abi_layout),
	        cmocka_unit_test(test_abi_ioctl_numbers),
	        cmocka_unit_test(test_exitinfo2_describe),
	        cmocka_unit_test(test_auto_tsm_unusable),
	        cmocka_unit_test(test_kind_names),
	        cmocka_unit_test(test_auto_nothing_present),
	        cmocka_unit_test(test_auto_order),
	        cmocka_unit_test(test_explicit_kinds_fail_clearly),
	        cmocka_unit_test(test_virtual_source),
	        cmocka_unit_test(test_sev_guest_fetch),
	        cmocka_unit_test(test_msg_report_rsp_check),
	        cmocka_unit_test(test_sev_legacy),
	        cmocka_unit_test(test_tsm_report),
	        cmocka_unit_test(test_tsm_vmpl_and_no_auxblob),
	        cmocka_unit_test(test_tsm_failures),
	        cmocka_unit_test(test_tsm_other_writer_once),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
