/* SPDX-License-Identifier: MIT */
/*
 * SEV-SNP report layout (§1.1), TCB layouts (§1.2), product detection and rejections. The raw
 * reports are built here byte by byte from the spec's offset table, independently of the
 * parser's own offset constants.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cleanup.h"
#include "skr.h"

static void le32(uint8_t *buf, size_t off, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		buf[off + i] = (uint8_t)(v >> (8 * i));
}

static void le64(uint8_t *buf, size_t off, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		buf[off + i] = (uint8_t)(v >> (8 * i));
}

/* Distinct bytes per field: start, start+1, ... */
static void fill(uint8_t *buf, size_t off, size_t len, uint8_t start)
{
	for (size_t i = 0; i < len; i++)
		buf[off + i] = (uint8_t)(start + i);
}

#define GUEST_SVN 0x11223344u
#define POLICY UINT64_C(0x00000000020B1F05) /* bit 17 set, plus SMT, DEBUG, PAGE_SWAP */
#define VMPL 2u
#define SIG_ALGO 1u
#define CURRENT_TCB UINT64_C(0x7308000000000003)
#define PLATFORM_INFO UINT64_C(0x25)
#define KEY_INFO 0x5u /* AUTHOR_KEY_EN, SIGNING_KEY = VLEK */
#define REPORTED_TCB UINT64_C(0xD316000000000004)
#define COMMITTED_TCB UINT64_C(0x6A05000000000102)
#define LAUNCH_TCB UINT64_C(0x5004000000000201)
#define LAUNCH_MIT UINT64_C(0x0102030405060708)
#define CURRENT_MIT UINT64_C(0x1112131415161718)

/*
 * A report of @version with every documented field set, INCLUDING the CPUID bytes and the
 * mitigation vectors whatever the version: a v2 parser must ignore them.
 */
static void build_raw(uint8_t *b, uint32_t version)
{
	memset(b, 0, SNP_REPORT_SIZE);
	le32(b, 0x000, version);
	le32(b, 0x004, GUEST_SVN);
	le64(b, 0x008, POLICY);
	fill(b, 0x010, 16, 0x10);
	fill(b, 0x020, 16, 0x20);
	le32(b, 0x030, VMPL);
	le32(b, 0x034, SIG_ALGO);
	le64(b, 0x038, CURRENT_TCB);
	le64(b, 0x040, PLATFORM_INFO);
	le32(b, 0x048, KEY_INFO);
	fill(b, 0x050, 64, 0x50);
	fill(b, 0x090, 48, 0x90);
	fill(b, 0x0C0, 32, 0xC0);
	fill(b, 0x0E0, 48, 0x30);
	fill(b, 0x110, 48, 0x70);
	fill(b, 0x140, 32, 0xA0);
	fill(b, 0x160, 32, 0xE0);
	le64(b, 0x180, REPORTED_TCB);
	b[0x188] = 0x19; /* CPUID_FAM_ID */
	b[0x189] = 0x11; /* CPUID_MOD_ID: Genoa */
	b[0x18A] = 0x01; /* CPUID_STEP */
	fill(b, 0x1A0, 64, 0x01);
	le64(b, 0x1E0, COMMITTED_TCB);
	b[0x1E8] = 21; /* CURRENT_BUILD, MINOR, MAJOR */
	b[0x1E9] = 55;
	b[0x1EA] = 1;
	b[0x1EC] = 20; /* COMMITTED_BUILD, MINOR, MAJOR */
	b[0x1ED] = 54;
	b[0x1EE] = 1;
	le64(b, 0x1F0, LAUNCH_TCB);
	le64(b, 0x1F8, LAUNCH_MIT);
	le64(b, 0x200, CURRENT_MIT);
	fill(b, 0x2A0, 72, 0x80);
	fill(b, 0x2E8, 72, 0x08);
}

static void check_fields(const struct snp_report *r, const uint8_t *b, uint32_t version)
{
	assert_int_equal(r->version, version);
	assert_int_equal(r->guest_svn, GUEST_SVN);
	assert_int_equal(r->policy, POLICY);
	assert_memory_equal(r->family_id, b + 0x010, 16);
	assert_memory_equal(r->image_id, b + 0x020, 16);
	assert_int_equal(r->vmpl, VMPL);
	assert_int_equal(r->signature_algo, SIG_ALGO);
	assert_int_equal(r->current_tcb, CURRENT_TCB);
	assert_int_equal(r->platform_info, PLATFORM_INFO);
	assert_int_equal(r->key_info, KEY_INFO);
	assert_int_equal(snp_report_signing_key(r), SNP_SIGNING_KEY_VLEK);
	assert_memory_equal(r->report_data, b + 0x050, 64);
	assert_memory_equal(r->measurement, b + 0x090, 48);
	assert_memory_equal(r->host_data, b + 0x0C0, 32);
	assert_memory_equal(r->id_key_digest, b + 0x0E0, 48);
	assert_memory_equal(r->author_key_digest, b + 0x110, 48);
	assert_memory_equal(r->report_id, b + 0x140, 32);
	assert_memory_equal(r->report_id_ma, b + 0x160, 32);
	assert_int_equal(r->reported_tcb, REPORTED_TCB);
	if (version >= 3) {
		assert_int_equal(r->cpuid_fam_id, 0x19);
		assert_int_equal(r->cpuid_mod_id, 0x11);
		assert_int_equal(r->cpuid_step, 0x01);
	} else {
		/* Reserved in v2: not read. */
		assert_int_equal(r->cpuid_fam_id, 0);
		assert_int_equal(r->cpuid_mod_id, 0);
		assert_int_equal(r->cpuid_step, 0);
	}
	assert_memory_equal(r->chip_id, b + 0x1A0, 64);
	assert_int_equal(r->committed_tcb, COMMITTED_TCB);
	assert_int_equal(r->current_build, 21);
	assert_int_equal(r->current_minor, 55);
	assert_int_equal(r->current_major, 1);
	assert_int_equal(r->committed_build, 20);
	assert_int_equal(r->committed_minor, 54);
	assert_int_equal(r->committed_major, 1);
	assert_int_equal(r->launch_tcb, LAUNCH_TCB);
	if (version >= 5) {
		assert_int_equal(r->launch_mit_vector, LAUNCH_MIT);
		assert_int_equal(r->current_mit_vector, CURRENT_MIT);
	} else {
		assert_int_equal(r->launch_mit_vector, 0);
		assert_int_equal(r->current_mit_vector, 0);
	}
	assert_memory_equal(r->signature_r, b + 0x2A0, 72);
	assert_memory_equal(r->signature_s, b + 0x2E8, 72);
}

static void test_round_trip_each_version(void **state)
{
	for (uint32_t version = 2; version <= 5; version++) {
		uint8_t raw[SNP_REPORT_SIZE], expect[SNP_REPORT_SIZE], out[SNP_REPORT_SIZE];
		struct snp_report r, again;
		struct skr_error err = {0};

		build_raw(raw, version);
		assert_int_equal(snp_report_parse(raw, sizeof(raw), &r, &err), 0);
		check_fields(&r, raw, version);

		/* Bytes a version does not define come back as zero (reserved). */
		memcpy(expect, raw, sizeof(expect));
		if (version < 3)
			memset(expect + 0x188, 0, 3);
		if (version < 5)
			memset(expect + 0x1F8, 0, 16);
		snp_report_serialize(&r, out);
		assert_memory_equal(out, expect, SNP_REPORT_SIZE);

		assert_int_equal(snp_report_parse(out, sizeof(out), &again, &err), 0);
		assert_memory_equal(&again, &r, sizeof(r));
	}
}

/* Reserved areas are not interpreted: filling them changes nothing that was parsed. */
static void test_reserved_ignored(void **state)
{
	uint8_t raw[SNP_REPORT_SIZE];
	struct snp_report a, b;

	build_raw(raw, 5);
	assert_int_equal(snp_report_parse(raw, sizeof(raw), &a, NULL), 0);
	memset(raw + 0x04C, 0xEE, 4);
	memset(raw + 0x18B, 0xEE, 21);
	raw[0x1EB] = 0xEE;
	raw[0x1EF] = 0xEE;
	memset(raw + 0x208, 0xEE, 152);
	memset(raw + 0x330, 0xEE, SNP_REPORT_SIZE - 0x330);
	assert_int_equal(snp_report_parse(raw, sizeof(raw), &b, NULL), 0);
	assert_memory_equal(&a, &b, sizeof(a));
}

struct reject_case {
	const char *name;
	size_t len;
	uint32_t version;
	uint32_t key_info;
	uint64_t policy;
	const char *msg;
};

static const struct reject_case reject_cases[] = {
        {"short", 1000, 3, KEY_INFO, POLICY, "report is 1000 bytes, expected 1184"},
        {"long", 1185, 3, KEY_INFO, POLICY, "report is 1185 bytes, expected 1184"},
        {"version 1", SNP_REPORT_SIZE, 1, KEY_INFO, POLICY,
         "report VERSION 1 is not supported (2..5)"},
        {"version 6", SNP_REPORT_SIZE, 6, KEY_INFO, POLICY,
         "report VERSION 6 is not supported (2..5)"},
        {"version 7", SNP_REPORT_SIZE, 7, KEY_INFO, POLICY,
         "report VERSION 7 is not supported (2..5)"},
        {"key_info bit 5", SNP_REPORT_SIZE, 3, 0x20, POLICY, "KEY_INFO 0x00000020"},
        {"key_info bit 31", SNP_REPORT_SIZE, 3, 0x80000001u, POLICY, "KEY_INFO 0x80000001"},
        {"policy bit 17 clear", SNP_REPORT_SIZE, 3, KEY_INFO, UINT64_C(0x10000),
         "POLICY 0x0000000000010000 has reserved bit 17 clear"},
};

static void test_rejections(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(reject_cases); i++) {
		const struct reject_case *c = &reject_cases[i];
		uint8_t raw[SNP_REPORT_SIZE + 8] = {0};
		struct snp_report r;
		struct skr_error err = {0};

		build_raw(raw, c->version);
		le32(raw, 0x048, c->key_info);
		le64(raw, 0x008, c->policy);
		assert_int_equal(snp_report_parse(raw, c->len, &r, &err), -EINVAL);
		assert_int_equal(err.code, -EINVAL);
		if (!strstr(err.msg, c->msg))
			fail_msg("%s: '%s' does not contain '%s'", c->name, err.msg, c->msg);
	}
}

struct tcb_case {
	const char *name;
	enum snp_product product;
	uint8_t bytes[8]; /* as stored in the report */
	uint64_t raw;
	struct snp_tcb tcb;
};

static const struct tcb_case tcb_cases[] = {
        /* §1.2's example: THIM tcbm "7308000000000003". */
        {"milan",
         SNP_PRODUCT_MILAN,
         {0x03, 0, 0, 0, 0, 0, 0x08, 0x73},
         UINT64_C(0x7308000000000003),
         {.bootloader = 3, .tee = 0, .snp = 8, .microcode = 0x73}},
        /* microcode 211 (≥ 128): no sign trouble anywhere. */
        {"milan ucode 211",
         SNP_PRODUCT_MILAN,
         {0x04, 0x01, 0, 0, 0, 0, 0x16, 0xD3},
         UINT64_C(0xD316000000000104),
         {.bootloader = 4, .tee = 1, .snp = 22, .microcode = 211}},
        {"genoa",
         SNP_PRODUCT_GENOA,
         {0x07, 0x00, 0, 0, 0, 0, 0x17, 0x54},
         UINT64_C(0x5417000000000007),
         {.bootloader = 7, .tee = 0, .snp = 23, .microcode = 0x54}},
        {"unknown = milan layout",
         SNP_PRODUCT_UNKNOWN,
         {0x09, 0x02, 0, 0, 0, 0, 0x0F, 0x30},
         UINT64_C(0x300F000000000209),
         {.bootloader = 9, .tee = 2, .snp = 15, .microcode = 0x30}},
        {"turin",
         SNP_PRODUCT_TURIN,
         {0x01, 0x02, 0x03, 0x04, 0, 0, 0, 0xD3},
         UINT64_C(0xD300000004030201),
         {.fmc = 1, .bootloader = 2, .tee = 3, .snp = 4, .microcode = 211}},
};

static void test_tcb_vectors(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(tcb_cases); i++) {
		const struct tcb_case *c = &tcb_cases[i];
		uint8_t raw[SNP_REPORT_SIZE];
		struct snp_report r;
		struct snp_tcb t;

		/* The bytes as they sit in a report give the documented u64. */
		build_raw(raw, 3);
		memcpy(raw + 0x180, c->bytes, 8);
		assert_int_equal(snp_report_parse(raw, sizeof(raw), &r, NULL), 0);
		assert_int_equal(r.reported_tcb, c->raw);

		snp_tcb_decode(c->raw, c->product, &t);
		assert_int_equal(t.fmc, c->tcb.fmc);
		assert_int_equal(t.bootloader, c->tcb.bootloader);
		assert_int_equal(t.tee, c->tcb.tee);
		assert_int_equal(t.snp, c->tcb.snp);
		assert_int_equal(t.microcode, c->tcb.microcode);
		assert_int_equal(snp_tcb_encode(&c->tcb, c->product), c->raw);
	}
}

/* The layouts differ: the same u64 decodes differently, and reserved bytes are not kept. */
static void test_tcb_layouts_differ(void **state)
{
	struct snp_tcb m, t;
	struct snp_tcb milan_with_fmc = {.fmc = 9, .bootloader = 1, .snp = 2, .microcode = 3};

	snp_tcb_decode(UINT64_C(0xD300000004030201), SNP_PRODUCT_MILAN, &m);
	snp_tcb_decode(UINT64_C(0xD300000004030201), SNP_PRODUCT_TURIN, &t);
	assert_int_equal(m.bootloader, 1);
	assert_int_equal(m.tee, 2);
	assert_int_equal(m.snp, 0);
	assert_int_equal(m.fmc, 0);
	assert_int_equal(t.bootloader, 2);
	assert_int_equal(t.snp, 4);

	/* Milan has no FMC: it is not encoded. Reserved bytes 2..5 decode to nothing. */
	assert_int_equal(snp_tcb_encode(&milan_with_fmc, SNP_PRODUCT_MILAN),
	                 UINT64_C(0x0302000000000001));
	snp_tcb_decode(UINT64_C(0x0302AABBCCDD0001), SNP_PRODUCT_MILAN, &m);
	assert_int_equal(snp_tcb_encode(&m, SNP_PRODUCT_MILAN), UINT64_C(0x0302000000000001));
}

struct product_case {
	const char *name;
	uint32_t version;
	uint8_t family, model; /* written to the CPUID bytes (ignored by v2) */
	int chip_id_len;       /* non-zero leading bytes of CHIP_ID */
	enum snp_product hint;
	enum snp_product expect;
};

static const struct product_case product_cases[] = {
        {"v3 milan", 3, 0x19, 0x01, 64, SNP_PRODUCT_UNKNOWN, SNP_PRODUCT_MILAN},
        {"v3 milan model 0x0f", 3, 0x19, 0x0F, 64, SNP_PRODUCT_UNKNOWN, SNP_PRODUCT_MILAN},
        {"v3 genoa 0x11", 3, 0x19, 0x11, 64, SNP_PRODUCT_UNKNOWN, SNP_PRODUCT_GENOA},
        {"v4 genoa 0xa0", 4, 0x19, 0xA0, 64, SNP_PRODUCT_UNKNOWN, SNP_PRODUCT_GENOA},
        {"v5 genoa 0xaf", 5, 0x19, 0xAF, 64, SNP_PRODUCT_UNKNOWN, SNP_PRODUCT_GENOA},
        {"v3 turin", 3, 0x1A, 0x02, 8, SNP_PRODUCT_UNKNOWN, SNP_PRODUCT_TURIN},
        {"v3 turin 0x11", 3, 0x1A, 0x11, 8, SNP_PRODUCT_UNKNOWN, SNP_PRODUCT_TURIN},
        /* CPUID wins over a hint. */
        {"v3 genoa, milan hint", 3, 0x19, 0x11, 64, SNP_PRODUCT_MILAN, SNP_PRODUCT_GENOA},
        /* A CPU outside the table: only the hint can say. */
        {"v3 family 0x19 model 0x30", 3, 0x19, 0x30, 64, SNP_PRODUCT_UNKNOWN, SNP_PRODUCT_UNKNOWN},
        {"v3 family 0x1a model 0x12, turin hint", 3, 0x1A, 0x12, 8, SNP_PRODUCT_TURIN,
         SNP_PRODUCT_TURIN},
        /* v2: CHIP_ID shape; CPUID bytes (Turin here) are reserved and must be ignored. */
        {"v2 64-byte chip id", 2, 0x1A, 0x02, 64, SNP_PRODUCT_UNKNOWN, SNP_PRODUCT_MILAN},
        {"v2 8-byte chip id", 2, 0x19, 0x01, 8, SNP_PRODUCT_UNKNOWN, SNP_PRODUCT_TURIN},
        {"v2 + genoa hint", 2, 0, 0, 64, SNP_PRODUCT_GENOA, SNP_PRODUCT_GENOA},
        {"v2 + turin hint, 64-byte chip id", 2, 0, 0, 64, SNP_PRODUCT_TURIN, SNP_PRODUCT_MILAN},
        {"v2 masked chip id", 2, 0, 0, 0, SNP_PRODUCT_UNKNOWN, SNP_PRODUCT_UNKNOWN},
        {"v2 masked chip id + genoa hint", 2, 0, 0, 0, SNP_PRODUCT_GENOA, SNP_PRODUCT_GENOA},
};

static void test_product_detection(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(product_cases); i++) {
		const struct product_case *c = &product_cases[i];
		uint8_t raw[SNP_REPORT_SIZE];
		struct snp_report r;
		enum snp_product got;

		build_raw(raw, c->version);
		raw[0x188] = c->family;
		raw[0x189] = c->model;
		memset(raw + 0x1A0, 0, 64);
		fill(raw, 0x1A0, (size_t)c->chip_id_len, 0x01);
		assert_int_equal(snp_report_parse(raw, sizeof(raw), &r, NULL), 0);
		got = snp_report_product(&r, c->hint);
		if (got != c->expect)
			fail_msg("%s: got %s, expected %s", c->name, snp_product_name(got),
			         snp_product_name(c->expect));
	}
}

static void test_product_names(void **state)
{
	static const struct {
		const char *s;
		int ret;
		enum snp_product p;
	} cases[] = {
	        {"Milan", 0, SNP_PRODUCT_MILAN},
	        {"milan", 0, SNP_PRODUCT_MILAN},
	        {"GENOA", 0, SNP_PRODUCT_GENOA},
	        {"Turin", 0, SNP_PRODUCT_TURIN},
	        {"Milan-B0", 0, SNP_PRODUCT_MILAN},
	        {"Genoa-B1", 0, SNP_PRODUCT_GENOA},
	        {"Milanx", -EINVAL, 0},
	        {"unknown", -EINVAL, 0},
	        {"", -EINVAL, 0},
	        {"Mil", -EINVAL, 0},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		enum snp_product p = SNP_PRODUCT_UNKNOWN;

		assert_int_equal(snp_product_from_string(cases[i].s, &p), cases[i].ret);
		if (cases[i].ret == 0)
			assert_int_equal(p, cases[i].p);
	}
	for (enum snp_product p = SNP_PRODUCT_MILAN; p <= SNP_PRODUCT_TURIN; p++) {
		enum snp_product back;

		assert_int_equal(snp_product_from_string(snp_product_name(p), &back), 0);
		assert_int_equal(back, p);
	}
	assert_string_equal(snp_product_name(SNP_PRODUCT_UNKNOWN), "unknown");
	assert_string_equal(snp_product_name((enum snp_product)42), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_round_trip_each_version),
	        cmocka_unit_test(test_reserved_ignored),
	        cmocka_unit_test(test_rejections),
	        cmocka_unit_test(test_tcb_vectors),
	        cmocka_unit_test(test_tcb_layouts_differ),
	        cmocka_unit_test(test_product_detection),
	        cmocka_unit_test(test_product_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
