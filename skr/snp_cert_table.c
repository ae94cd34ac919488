/* SPDX-License-Identifier: MIT */
/*
 * The certificate table of SNP_GET_EXT_REPORT / configfs-tsm auxblob (protocols.md §2.4):
 * 24-byte entries { guid[16]; u32 offset; u32 length; } ending with an all-zero entry, the DER
 * certificates after them in the same buffer. The buffer comes from the host, which the guest
 * does not trust, so every offset and length is checked before it is used.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "cleanup.h"
#include "skr.h"

#define ENTRY_SIZE 24
/* The host rounds the EXT_REPORT certificate buffer up to whole pages (§2.4, kernel ABI). */
#define TABLE_ALIGN 4096

/* GUID bytes in RFC 4122 string order, as go-sev-guest and virtee read them. */
static const struct {
	enum snp_cert_kind kind;
	const char *name;
	uint8_t guid[16];
} cert_guids[] = {
        {SNP_CERT_ARK,
         "ARK",
         {0xc0, 0xb4, 0x06, 0xa4, 0xa8, 0x03, 0x49, 0x52, 0x97, 0x43, 0x3f, 0xb6, 0x01, 0x4c, 0xd0,
          0xae}},
        {SNP_CERT_ASK,
         "ASK",
         {0x4a, 0xb7, 0xb3, 0x79, 0xbb, 0xac, 0x4f, 0xe4, 0xa0, 0x2f, 0x05, 0xae, 0xf3, 0x27, 0xc7,
          0x82}},
        {SNP_CERT_VCEK,
         "VCEK",
         {0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64, 0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac,
          0xcd}},
        {SNP_CERT_VLEK,
         "VLEK",
         {0xa8, 0x07, 0x4b, 0xc2, 0xa2, 0x5a, 0x48, 0x3e, 0xaa, 0xe6, 0x39, 0xc0, 0x45, 0xa0, 0xb8,
          0xa1}},
        {SNP_CERT_CRL,
         "CRL",
         {0x92, 0xf8, 0x1b, 0xc3, 0x58, 0x11, 0x4d, 0x3d, 0x97, 0xff, 0xd1, 0x9f, 0x88, 0xdc, 0x67,
          0xea}},
};

static enum snp_cert_kind kind_of_guid(const uint8_t guid[16])
{
	for (size_t i = 0; i < ELEMENTSOF(cert_guids); i++)
		if (memcmp(cert_guids[i].guid, guid, 16) == 0)
			return cert_guids[i].kind;
	return SNP_CERT_OTHER;
}

static const uint8_t *guid_of_kind(enum snp_cert_kind kind)
{
	for (size_t i = 0; i < ELEMENTSOF(cert_guids); i++)
		if (cert_guids[i].kind == kind)
			return cert_guids[i].guid;
	return NULL;
}

void snp_cert_table_clear(struct snp_cert_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->count && i < SNP_CERT_TABLE_MAX; i++)
		free(t->entries[i].data);
	memset(t, 0, sizeof(*t));
}

/*
 * An empty buffer (len 0) and an all-zero buffer are an empty table: hosts that supply no
 * certificates hand back either. Entries are copied out, so @buf may be freed afterwards.
 * A malformed table is the host's fault, not the caller's: -EPROTO.
 */
int snp_cert_table_parse(const uint8_t *buf, size_t len, struct snp_cert_table *out,
                         struct skr_error *err)
{
	struct snp_cert_table t = {0};
	size_t n = 0, table_size;
	int r;

	if (!out || (!buf && len > 0))
		return skr_error_set(err, -EINVAL, "certificate table: no buffer given");
	memset(out, 0, sizeof(*out));
	if (len == 0)
		return 0;

	/* Find the terminator first, so that no entry is trusted before the table's end is known. */
	for (;; n++) {
		const uint8_t *e = buf + n * ENTRY_SIZE;

		if (len / ENTRY_SIZE < n + 1)
			return skr_error_set(
			        err, -EPROTO,
			        "certificate table: no all-zero terminating entry within "
			        "the %zu-byte buffer (%zu entries read)",
			        len, n);
		if (all_zero(e, ENTRY_SIZE))
			break;
		if (n == SNP_CERT_TABLE_MAX)
			return skr_error_set(err, -EPROTO,
			                     "certificate table: more than %d entries before the "
			                     "terminator",
			                     SNP_CERT_TABLE_MAX);
	}
	table_size = (n + 1) * ENTRY_SIZE;

	for (size_t i = 0; i < n; i++) {
		const uint8_t *e = buf + i * ENTRY_SIZE;
		uint64_t offset = get_le32(e + 16), length = get_le32(e + 20);
		struct snp_cert_table_entry *ent = &t.entries[i];

		if (all_zero(e, 16)) {
			r = skr_error_set(
			        err, -EPROTO,
			        "certificate table entry %zu: zero GUID with offset %" PRIu64
			        " and length %" PRIu64 " set",
			        i, offset, length);
			goto fail;
		}
		if (length == 0) {
			r = skr_error_set(err, -EPROTO, "certificate table entry %zu: length 0", i);
			goto fail;
		}
		/* u64 arithmetic: two u32 values cannot overflow it. */
		if (offset < table_size) {
			r = skr_error_set(err, -EPROTO,
			                  "certificate table entry %zu: offset %" PRIu64
			                  " points into the table itself (%zu bytes of entries)",
			                  i, offset, table_size);
			goto fail;
		}
		if (offset + length > len) {
			r = skr_error_set(err, -EPROTO,
			                  "certificate table entry %zu: offset %" PRIu64
			                  " + length %" PRIu64 " exceeds the %zu-byte buffer",
			                  i, offset, length, len);
			goto fail;
		}
		memcpy(ent->guid, e, 16);
		ent->kind = kind_of_guid(ent->guid);
		ent->data = malloc(length);
		if (!ent->data) {
			r = skr_error_set(err, -ENOMEM, "certificate table: out of memory");
			goto fail;
		}
		memcpy(ent->data, buf + offset, length);
		ent->len = length;
		t.count = i + 1;
	}
	*out = t;
	return 0;

fail:
	snp_cert_table_clear(&t);
	return r;
}

int snp_cert_table_serialize(const struct snp_cert_table *t, uint8_t **out, size_t *out_len,
                             struct skr_error *err)
{
	_cleanup_free_ uint8_t *buf = NULL;
	size_t size, pos;

	if (!t || !out || !out_len)
		return skr_error_set(err, -EINVAL, "certificate table: no table given");
	if (t->count > SNP_CERT_TABLE_MAX)
		return skr_error_set(err, -EINVAL, "certificate table: %zu entries, at most %d",
		                     t->count, SNP_CERT_TABLE_MAX);

	size = (t->count + 1) * ENTRY_SIZE;
	for (size_t i = 0; i < t->count; i++) {
		if (!t->entries[i].data || t->entries[i].len == 0)
			return skr_error_set(err, -EINVAL, "certificate table entry %zu is empty",
			                     i);
		if (t->entries[i].len > UINT32_MAX - size)
			return skr_error_set(err, -EOVERFLOW,
			                     "certificate table: entries exceed 4 GiB");
		size += t->entries[i].len;
	}
	if (size > UINT32_MAX - TABLE_ALIGN)
		return skr_error_set(err, -EOVERFLOW, "certificate table: entries exceed 4 GiB");
	size = (size + TABLE_ALIGN - 1) / TABLE_ALIGN * TABLE_ALIGN;

	buf = calloc(1, size);
	if (!buf)
		return skr_error_set(err, -ENOMEM, "certificate table: out of memory");
	pos = (t->count + 1) * ENTRY_SIZE;
	for (size_t i = 0; i < t->count; i++) {
		uint8_t *e = buf + i * ENTRY_SIZE;

		memcpy(e, t->entries[i].guid, 16);
		put_le32(e + 16, (uint32_t)pos);
		put_le32(e + 20, (uint32_t)t->entries[i].len);
		memcpy(buf + pos, t->entries[i].data, t->entries[i].len);
		pos += t->entries[i].len;
	}
	*out = TAKE_PTR(buf);
	*out_len = size;
	return 0;
}

int snp_cert_table_add(struct snp_cert_table *t, enum snp_cert_kind kind, const uint8_t *der,
                       size_t len, struct skr_error *err)
{
	const uint8_t *guid = guid_of_kind(kind);
	struct snp_cert_table_entry *e;

	if (!t || !der || len == 0)
		return skr_error_set(err, -EINVAL, "certificate table: nothing to add");
	if (!guid)
		return skr_error_set(err, -EINVAL,
		                     "certificate table: kind %d has no GUID; only ARK, ASK, VCEK, "
		                     "VLEK and CRL can be added",
		                     (int)kind);
	if (len > UINT32_MAX)
		return skr_error_set(err, -EOVERFLOW, "certificate table: %zu-byte entry too large",
		                     len);
	if (t->count >= SNP_CERT_TABLE_MAX)
		return skr_error_set(err, -ENOSPC, "certificate table is full (%d entries)",
		                     SNP_CERT_TABLE_MAX);

	e = &t->entries[t->count];
	e->data = malloc(len);
	if (!e->data)
		return skr_error_set(err, -ENOMEM, "certificate table: out of memory");
	memcpy(e->data, der, len);
	memcpy(e->guid, guid, 16);
	e->kind = kind;
	e->len = len;
	t->count++;
	return 0;
}

const struct snp_cert_table_entry *snp_cert_table_find(const struct snp_cert_table *t,
                                                       enum snp_cert_kind kind)
{
	if (!t)
		return NULL;
	for (size_t i = 0; i < t->count && i < SNP_CERT_TABLE_MAX; i++)
		if (t->entries[i].kind == kind)
			return &t->entries[i];
	return NULL;
}
