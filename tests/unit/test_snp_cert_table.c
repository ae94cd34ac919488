/* SPDX-License-Identifier: MIT */
/* Certificate table of the extended report (protocols.md §2.4). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cleanup.h"
#include "skr.h"

#define ENTRY 24

static const uint8_t guid_vcek[16] = {0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64,
                                      0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd};

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void set_entry(uint8_t *buf, size_t index, const uint8_t guid[16], uint32_t offset,
                      uint32_t length)
{
	memcpy(buf + index * ENTRY, guid, 16);
	put_le32(buf + index * ENTRY + 16, offset);
	put_le32(buf + index * ENTRY + 20, length);
}

static void test_round_trip(void **state)
{
	struct snp_cert_table t = {0}, back;
	struct skr_error err = {0};
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;
	const uint8_t vcek[] = "vcek-der", ask[] = "ask-der-longer", ark[] = "ark", crl[] = "crl!";

	assert_int_equal(snp_cert_table_add(&t, SNP_CERT_VCEK, vcek, sizeof(vcek), &err), 0);
	assert_int_equal(snp_cert_table_add(&t, SNP_CERT_ASK, ask, sizeof(ask), &err), 0);
	assert_int_equal(snp_cert_table_add(&t, SNP_CERT_ARK, ark, sizeof(ark), &err), 0);
	assert_int_equal(snp_cert_table_add(&t, SNP_CERT_CRL, crl, sizeof(crl), &err), 0);
	assert_int_equal(snp_cert_table_serialize(&t, &buf, &len, &err), 0);
	assert_int_equal(len, 4096);
	/* The GUID is stored in RFC 4122 string order, the offset after the 5-entry table. */
	assert_memory_equal(buf, guid_vcek, 16);
	assert_int_equal(buf[16], 5 * ENTRY);
	for (int i = 4 * ENTRY; i < 5 * ENTRY; i++)
		assert_int_equal(buf[i], 0);

	assert_int_equal(snp_cert_table_parse(buf, len, &back, &err), 0);
	assert_int_equal(back.count, 4);
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(back.entries[i].kind, t.entries[i].kind);
		assert_memory_equal(back.entries[i].guid, t.entries[i].guid, 16);
		assert_int_equal(back.entries[i].len, t.entries[i].len);
		assert_memory_equal(back.entries[i].data, t.entries[i].data, t.entries[i].len);
	}
	assert_ptr_equal(snp_cert_table_find(&back, SNP_CERT_ASK), &back.entries[1]);
	assert_null(snp_cert_table_find(&back, SNP_CERT_VLEK));
	snp_cert_table_clear(&back);
	snp_cert_table_clear(&t);
	assert_int_equal(t.count, 0);
}

static void test_serialize_pads_to_pages(void **state)
{
	struct snp_cert_table t = {0};
	struct skr_error err = {0};
	_cleanup_free_ uint8_t *buf = NULL, *big = calloc(1, 5000);
	size_t len;

	assert_non_null(big);
	big[0] = 1;
	assert_int_equal(snp_cert_table_add(&t, SNP_CERT_VCEK, big, 5000, &err), 0);
	assert_int_equal(snp_cert_table_serialize(&t, &buf, &len, &err), 0);
	assert_int_equal(len, 8192);
	snp_cert_table_clear(&t);
	free(buf);
	buf = NULL;

	/* An empty table serializes to one zero page, which parses back as empty. */
	assert_int_equal(snp_cert_table_serialize(&t, &buf, &len, &err), 0);
	assert_int_equal(len, 4096);
	assert_int_equal(snp_cert_table_parse(buf, len, &t, &err), 0);
	assert_int_equal(t.count, 0);
}

static void test_guid_classification(void **state)
{
	static const struct {
		const char *name;
		uint8_t guid[16];
		enum snp_cert_kind kind;
	} cases[] = {
	        {"ARK",
	         {0xc0, 0xb4, 0x06, 0xa4, 0xa8, 0x03, 0x49, 0x52, 0x97, 0x43, 0x3f, 0xb6, 0x01,
	          0x4c, 0xd0, 0xae},
	         SNP_CERT_ARK},
	        {"ASK",
	         {0x4a, 0xb7, 0xb3, 0x79, 0xbb, 0xac, 0x4f, 0xe4, 0xa0, 0x2f, 0x05, 0xae, 0xf3,
	          0x27, 0xc7, 0x82},
	         SNP_CERT_ASK},
	        {"VCEK",
	         {0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64, 0xad, 0xc5, 0xf4, 0xb9, 0x3b,
	          0xe8, 0xac, 0xcd},
	         SNP_CERT_VCEK},
	        {"VLEK",
	         {0xa8, 0x07, 0x4b, 0xc2, 0xa2, 0x5a, 0x48, 0x3e, 0xaa, 0xe6, 0x39, 0xc0, 0x45,
	          0xa0, 0xb8, 0xa1},
	         SNP_CERT_VLEK},
	        {"CRL",
	         {0x92, 0xf8, 0x1b, 0xc3, 0x58, 0x11, 0x4d, 0x3d, 0x97, 0xff, 0xd1, 0x9f, 0x88,
	          0xdc, 0x67, 0xea},
	         SNP_CERT_CRL},
	        {"go-sev-guest extra platform info",
	         {0xec, 0xae, 0x0c, 0x0f, 0x95, 0x02, 0x43, 0xb1, 0xaf, 0xa2, 0x0a, 0xe2, 0xe0,
	          0xd5, 0x65, 0xb6},
	         SNP_CERT_OTHER},
	        /* The VCEK GUID in Microsoft's mixed-endian layout is not the VCEK. */
	        {"byte-swapped VCEK",
	         {0x8d, 0x75, 0xda, 0x63, 0x64, 0xe6, 0x64, 0x45, 0xad, 0xc5, 0xf4, 0xb9, 0x3b,
	          0xe8, 0xac, 0xcd},
	         SNP_CERT_OTHER},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		uint8_t buf[2 * ENTRY + 4] = {0};
		struct snp_cert_table t;
		struct skr_error err = {0};

		set_entry(buf, 0, cases[i].guid, 2 * ENTRY, 4);
		memcpy(buf + 2 * ENTRY, "DER!", 4);
		assert_int_equal(snp_cert_table_parse(buf, sizeof(buf), &t, &err), 0);
		assert_int_equal(t.count, 1);
		if (t.entries[0].kind != cases[i].kind)
			fail_msg("%s: kind %d, expected %d", cases[i].name, t.entries[0].kind,
			         cases[i].kind);
		/* Known kinds round-trip through add(); the GUID is the one above. */
		if (cases[i].kind != SNP_CERT_OTHER) {
			struct snp_cert_table u = {0};

			assert_int_equal(snp_cert_table_add(&u, cases[i].kind, buf, 1, &err), 0);
			assert_memory_equal(u.entries[0].guid, cases[i].guid, 16);
			snp_cert_table_clear(&u);
		}
		snp_cert_table_clear(&t);
	}
}

/* Builders of malformed tables: fill @buf (zeroed, 4096 bytes) and return the length. */
static size_t bad_offset_past_end(uint8_t *buf)
{
	set_entry(buf, 0, guid_vcek, 2 * ENTRY, 100);
	return 2 * ENTRY + 99;
}

static size_t bad_length_overflow(uint8_t *buf)
{
	/* offset + length wraps in 32 bits to a small value inside the buffer. */
	set_entry(buf, 0, guid_vcek, 0xFFFFFFF0u, 0x40);
	return 4096;
}

static size_t bad_offset_zero(uint8_t *buf)
{
	set_entry(buf, 0, guid_vcek, 0, 16);
	return 4096;
}

static size_t bad_offset_into_terminator(uint8_t *buf)
{
	/* Table = entry + terminator = 48 bytes; offset 24 overlaps the terminator. */
	set_entry(buf, 0, guid_vcek, ENTRY, 16);
	return 4096;
}

static size_t bad_offset_into_later_entry(uint8_t *buf)
{
	set_entry(buf, 0, guid_vcek, 3 * ENTRY, 8);
	set_entry(buf, 1, guid_vcek, 2 * ENTRY, 8); /* points at the terminator */
	return 4096;
}

static size_t bad_no_terminator(uint8_t *buf)
{
	set_entry(buf, 0, guid_vcek, 100, 1);
	set_entry(buf, 1, guid_vcek, 100, 1);
	return 2 * ENTRY;
}

static size_t bad_truncated_entry(uint8_t *buf)
{
	set_entry(buf, 0, guid_vcek, 100, 1);
	return ENTRY + 10; /* a partial second entry is no terminator */
}

static size_t bad_short_buffer(uint8_t *buf)
{
	memset(buf, 0xAA, 10);
	return 10;
}

static size_t bad_too_many_entries(uint8_t *buf)
{
	for (size_t i = 0; i < SNP_CERT_TABLE_MAX + 1; i++)
		set_entry(buf, i, guid_vcek, 1000, 1);
	return 4096;
}

static size_t bad_zero_length(uint8_t *buf)
{
	set_entry(buf, 0, guid_vcek, 2 * ENTRY, 0);
	return 4096;
}

static size_t bad_zero_guid_with_fields(uint8_t *buf)
{
	static const uint8_t zero[16];

	set_entry(buf, 0, zero, 2 * ENTRY, 4);
	return 4096;
}

static void test_malformed(void **state)
{
	static const struct {
		const char *name;
		size_t (*build)(uint8_t *buf);
		const char *msg; /* a word the error must contain */
	} cases[] = {
	        {"offset past end", bad_offset_past_end, "exceeds"},
	        {"length overflow", bad_length_overflow, "exceeds"},
	        {"offset 0 (into the table)", bad_offset_zero, "into the table"},
	        {"offset into terminator", bad_offset_into_terminator, "into the table"},
	        {"offset into a later entry", bad_offset_into_later_entry, "into the table"},
	        {"no terminator", bad_no_terminator, "terminat"},
	        {"truncated entry", bad_truncated_entry, "terminat"},
	        {"buffer shorter than an entry", bad_short_buffer, "terminat"},
	        {"too many entries", bad_too_many_entries, "more than"},
	        {"zero length", bad_zero_length, "length 0"},
	        {"zero GUID with fields", bad_zero_guid_with_fields, "zero GUID"},
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		uint8_t *buf = calloc(1, 4096);
		struct snp_cert_table t = {.count = 99};
		struct skr_error err = {0};
		size_t len;
		int r;

		assert_non_null(buf);
		len = cases[i].build(buf);
		r = snp_cert_table_parse(buf, len, &t, &err);
		if (r != -EPROTO)
			fail_msg("%s: returned %d, expected -EPROTO (a malformed host table)",
			         cases[i].name, r);
		if (!strstr(err.msg, cases[i].msg))
			fail_msg("%s: message '%s' lacks '%s'", cases[i].name, err.msg,
			         cases[i].msg);
		assert_int_equal(t.count, 0);
		free(buf);
	}
}

static void test_maximum_entries_accepted(void **state)
{
	_cleanup_free_ uint8_t *buf = calloc(1, 4096);
	struct snp_cert_table t;
	struct skr_error err = {0};

	assert_non_null(buf);
	for (size_t i = 0; i < SNP_CERT_TABLE_MAX; i++)
		set_entry(buf, i, guid_vcek, 1000 + (uint32_t)i, 1);
	assert_int_equal(snp_cert_table_parse(buf, 4096, &t, &err), 0);
	assert_int_equal(t.count, SNP_CERT_TABLE_MAX);
	snp_cert_table_clear(&t);
}

static void test_empty_buffers(void **state)
{
	_cleanup_free_ uint8_t *zero = calloc(1, 16384);
	struct snp_cert_table t = {.count = 5};
	struct skr_error err = {0};

	assert_non_null(zero);
	assert_int_equal(snp_cert_table_parse(zero, 16384, &t, &err), 0);
	assert_int_equal(t.count, 0);
	assert_int_equal(snp_cert_table_parse(zero, ENTRY, &t, &err), 0);
	assert_int_equal(t.count, 0);
	assert_int_equal(snp_cert_table_parse(NULL, 0, &t, &err), 0);
	assert_int_equal(t.count, 0);
	assert_int_equal(snp_cert_table_parse(NULL, 10, &t, &err), -EINVAL);
}

static void test_add_refusals(void **state)
{
	struct snp_cert_table t = {0};
	struct skr_error err = {0};
	const uint8_t der[] = {0x30, 0x00};

	assert_int_equal(snp_cert_table_add(&t, SNP_CERT_OTHER, der, sizeof(der), &err), -EINVAL);
	assert_int_equal(snp_cert_table_add(&t, SNP_CERT_VCEK, der, 0, &err), -EINVAL);
	for (int i = 0; i < SNP_CERT_TABLE_MAX; i++)
		assert_int_equal(snp_cert_table_add(&t, SNP_CERT_ASK, der, sizeof(der), &err), 0);
	skr_error_clear(&err);
	assert_int_equal(snp_cert_table_add(&t, SNP_CERT_ASK, der, sizeof(der), &err), -ENOSPC);
	assert_non_null(strstr(err.msg, "full"));
	snp_cert_table_clear(&t);
	snp_cert_table_clear(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_round_trip),
	        cmocka_unit_test(test_serialize_pads_to_pages),
	        cmocka_unit_test(test_guid_classification),
	        cmocka_unit_test(test_malformed),
	        cmocka_unit_test(test_maximum_entries_accepted),
	        cmocka_unit_test(test_empty_buffers),
	        cmocka_unit_test(test_add_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
