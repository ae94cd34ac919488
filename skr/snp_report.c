/* SPDX-License-Identifier: MIT */
/*
 * SEV-SNP attestation report: byte layout <-> struct snp_report, product line detection and the
 * two TCB_VERSION layouts. Layout: protocols.md §1.1; TCB: §1.2; POLICY: §1.3.
 *
 * Every field is read explicitly at its documented offset with little-endian helpers, never by
 * overlaying a packed struct: the layout changes with VERSION, and the input is untrusted.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "bytes.h"
#include "skr.h"

/* Offsets of §1.1. */
enum {
	OFF_VERSION = 0x000,
	OFF_GUEST_SVN = 0x004,
	OFF_POLICY = 0x008,
	OFF_FAMILY_ID = 0x010,
	OFF_IMAGE_ID = 0x020,
	OFF_VMPL = 0x030,
	OFF_SIGNATURE_ALGO = 0x034,
	OFF_CURRENT_TCB = 0x038,
	OFF_PLATFORM_INFO = 0x040,
	OFF_KEY_INFO = 0x048,
	OFF_REPORT_DATA = 0x050,
	OFF_MEASUREMENT = 0x090,
	OFF_HOST_DATA = 0x0C0,
	OFF_ID_KEY_DIGEST = 0x0E0,
	OFF_AUTHOR_KEY_DIGEST = 0x110,
	OFF_REPORT_ID = 0x140,
	OFF_REPORT_ID_MA = 0x160,
	OFF_REPORTED_TCB = 0x180,
	OFF_CPUID_FAM_ID = 0x188,
	OFF_CPUID_MOD_ID = 0x189,
	OFF_CPUID_STEP = 0x18A,
	OFF_CHIP_ID = 0x1A0,
	OFF_COMMITTED_TCB = 0x1E0,
	OFF_CURRENT_BUILD = 0x1E8,
	OFF_CURRENT_MINOR = 0x1E9,
	OFF_CURRENT_MAJOR = 0x1EA,
	OFF_COMMITTED_BUILD = 0x1EC,
	OFF_COMMITTED_MINOR = 0x1ED,
	OFF_COMMITTED_MAJOR = 0x1EE,
	OFF_LAUNCH_TCB = 0x1F0,
	OFF_LAUNCH_MIT_VECTOR = 0x1F8,
	OFF_CURRENT_MIT_VECTOR = 0x200,
	OFF_SIGNATURE_R = 0x2A0,
	OFF_SIGNATURE_S = 0x2E8,
};

/* KEY_INFO bits 31:5 must be zero (bit0 AUTHOR_KEY_EN, bit1 MASK_CHIP_KEY, bits 4:2 key). */
#define KEY_INFO_MBZ_MASK UINT32_C(0xFFFFFFE0)

/* The first versions carrying CPUID bytes (v3) and mitigation vectors (v5). */
#define VERSION_WITH_CPUID 3
#define VERSION_WITH_MIT_VECTORS 5

int snp_report_parse(const uint8_t *buf, size_t len, struct snp_report *out, struct skr_error *err)
{
	uint32_t version, key_info;
	uint64_t policy;
	struct snp_report *r = out;

	if (!buf || !out)
		return skr_error_set(err, -EINVAL, "report: no buffer given");
	if (len != SNP_REPORT_SIZE)
		return skr_error_set(err, -EINVAL, "report is %zu bytes, expected %d", len,
		                     SNP_REPORT_SIZE);

	version = get_le32(buf + OFF_VERSION);
	if (version < SNP_REPORT_VERSION_MIN || version > SNP_REPORT_VERSION_MAX)
		return skr_error_set(err, -EINVAL,
		                     "report VERSION %" PRIu32 " is not supported (%d..%d)",
		                     version, SNP_REPORT_VERSION_MIN, SNP_REPORT_VERSION_MAX);

	policy = get_le64(buf + OFF_POLICY);
	if (!(policy & SNP_POLICY_RESERVED_1))
		return skr_error_set(err, -EINVAL,
		                     "report POLICY 0x%016" PRIx64
		                     " has reserved bit 17 clear (firmware always sets it): not a "
		                     "report",
		                     policy);

	key_info = get_le32(buf + OFF_KEY_INFO);
	if (key_info & KEY_INFO_MBZ_MASK)
		return skr_error_set(
		        err, -EINVAL,
		        "report KEY_INFO 0x%08" PRIx32 " has must-be-zero bits 31:5 set", key_info);

	/* Zeroed whole, padding included, so that parsed structs compare with memcmp(). */
	memset(r, 0, sizeof(*r));
	r->version = version;
	r->policy = policy;
	r->key_info = key_info;
	r->guest_svn = get_le32(buf + OFF_GUEST_SVN);
	memcpy(r->family_id, buf + OFF_FAMILY_ID, sizeof(r->family_id));
	memcpy(r->image_id, buf + OFF_IMAGE_ID, sizeof(r->image_id));
	r->vmpl = get_le32(buf + OFF_VMPL);
	r->signature_algo = get_le32(buf + OFF_SIGNATURE_ALGO);
	r->current_tcb = get_le64(buf + OFF_CURRENT_TCB);
	r->platform_info = get_le64(buf + OFF_PLATFORM_INFO);
	memcpy(r->report_data, buf + OFF_REPORT_DATA, sizeof(r->report_data));
	memcpy(r->measurement, buf + OFF_MEASUREMENT, sizeof(r->measurement));
	memcpy(r->host_data, buf + OFF_HOST_DATA, sizeof(r->host_data));
	memcpy(r->id_key_digest, buf + OFF_ID_KEY_DIGEST, sizeof(r->id_key_digest));
	memcpy(r->author_key_digest, buf + OFF_AUTHOR_KEY_DIGEST, sizeof(r->author_key_digest));
	memcpy(r->report_id, buf + OFF_REPORT_ID, sizeof(r->report_id));
	memcpy(r->report_id_ma, buf + OFF_REPORT_ID_MA, sizeof(r->report_id_ma));
	r->reported_tcb = get_le64(buf + OFF_REPORTED_TCB);
	/* v2 firmware leaves these bytes reserved: whatever they hold is not a CPUID. */
	if (r->version >= VERSION_WITH_CPUID) {
		r->cpuid_fam_id = buf[OFF_CPUID_FAM_ID];
		r->cpuid_mod_id = buf[OFF_CPUID_MOD_ID];
		r->cpuid_step = buf[OFF_CPUID_STEP];
	}
	memcpy(r->chip_id, buf + OFF_CHIP_ID, sizeof(r->chip_id));
	r->committed_tcb = get_le64(buf + OFF_COMMITTED_TCB);
	r->current_build = buf[OFF_CURRENT_BUILD];
	r->current_minor = buf[OFF_CURRENT_MINOR];
	r->current_major = buf[OFF_CURRENT_MAJOR];
	r->committed_build = buf[OFF_COMMITTED_BUILD];
	r->committed_minor = buf[OFF_COMMITTED_MINOR];
	r->committed_major = buf[OFF_COMMITTED_MAJOR];
	r->launch_tcb = get_le64(buf + OFF_LAUNCH_TCB);
	if (r->version >= VERSION_WITH_MIT_VECTORS) {
		r->launch_mit_vector = get_le64(buf + OFF_LAUNCH_MIT_VECTOR);
		r->current_mit_vector = get_le64(buf + OFF_CURRENT_MIT_VECTOR);
	}
	memcpy(r->signature_r, buf + OFF_SIGNATURE_R, sizeof(r->signature_r));
	memcpy(r->signature_s, buf + OFF_SIGNATURE_S, sizeof(r->signature_s));

	return 0;
}

void snp_report_serialize(const struct snp_report *r, uint8_t out[SNP_REPORT_SIZE])
{
	memset(out, 0, SNP_REPORT_SIZE);
	put_le32(out + OFF_VERSION, r->version);
	put_le32(out + OFF_GUEST_SVN, r->guest_svn);
	put_le64(out + OFF_POLICY, r->policy);
	memcpy(out + OFF_FAMILY_ID, r->family_id, sizeof(r->family_id));
	memcpy(out + OFF_IMAGE_ID, r->image_id, sizeof(r->image_id));
	put_le32(out + OFF_VMPL, r->vmpl);
	put_le32(out + OFF_SIGNATURE_ALGO, r->signature_algo);
	put_le64(out + OFF_CURRENT_TCB, r->current_tcb);
	put_le64(out + OFF_PLATFORM_INFO, r->platform_info);
	put_le32(out + OFF_KEY_INFO, r->key_info);
	memcpy(out + OFF_REPORT_DATA, r->report_data, sizeof(r->report_data));
	memcpy(out + OFF_MEASUREMENT, r->measurement, sizeof(r->measurement));
	memcpy(out + OFF_HOST_DATA, r->host_data, sizeof(r->host_data));
	memcpy(out + OFF_ID_KEY_DIGEST, r->id_key_digest, sizeof(r->id_key_digest));
	memcpy(out + OFF_AUTHOR_KEY_DIGEST, r->author_key_digest, sizeof(r->author_key_digest));
	memcpy(out + OFF_REPORT_ID, r->report_id, sizeof(r->report_id));
	memcpy(out + OFF_REPORT_ID_MA, r->report_id_ma, sizeof(r->report_id_ma));
	put_le64(out + OFF_REPORTED_TCB, r->reported_tcb);
	/* Version-gated fields stay zero (reserved) in versions that do not define them. */
	if (r->version >= VERSION_WITH_CPUID) {
		out[OFF_CPUID_FAM_ID] = r->cpuid_fam_id;
		out[OFF_CPUID_MOD_ID] = r->cpuid_mod_id;
		out[OFF_CPUID_STEP] = r->cpuid_step;
	}
	memcpy(out + OFF_CHIP_ID, r->chip_id, sizeof(r->chip_id));
	put_le64(out + OFF_COMMITTED_TCB, r->committed_tcb);
	out[OFF_CURRENT_BUILD] = r->current_build;
	out[OFF_CURRENT_MINOR] = r->current_minor;
	out[OFF_CURRENT_MAJOR] = r->current_major;
	out[OFF_COMMITTED_BUILD] = r->committed_build;
	out[OFF_COMMITTED_MINOR] = r->committed_minor;
	out[OFF_COMMITTED_MAJOR] = r->committed_major;
	put_le64(out + OFF_LAUNCH_TCB, r->launch_tcb);
	if (r->version >= VERSION_WITH_MIT_VECTORS) {
		put_le64(out + OFF_LAUNCH_MIT_VECTOR, r->launch_mit_vector);
		put_le64(out + OFF_CURRENT_MIT_VECTOR, r->current_mit_vector);
	}
	memcpy(out + OFF_SIGNATURE_R, r->signature_r, sizeof(r->signature_r));
	memcpy(out + OFF_SIGNATURE_S, r->signature_s, sizeof(r->signature_s));
}

/* §1.1, after virtee/sev's identify_cpu: family/model ranges of each product line. */
static enum snp_product product_from_cpuid(uint8_t family, uint8_t model)
{
	if (family == 0x19) {
		if (model <= 0x0F)
			return SNP_PRODUCT_MILAN;
		if ((model >= 0x10 && model <= 0x1F) || (model >= 0xA0 && model <= 0xAF))
			return SNP_PRODUCT_GENOA;
	} else if (family == 0x1A) {
		if (model <= 0x11)
			return SNP_PRODUCT_TURIN;
	}
	return SNP_PRODUCT_UNKNOWN;
}

enum snp_product snp_report_product(const struct snp_report *r, enum snp_product hint)
{
	if (r->version >= VERSION_WITH_CPUID) {
		enum snp_product p = product_from_cpuid(r->cpuid_fam_id, r->cpuid_mod_id);

		/* A CPU newer than this table: the caller's hint (the VCEK's product) decides. */
		return p != SNP_PRODUCT_UNKNOWN ? p : hint;
	}

	/*
	 * v2: no CPUID. A masked CHIP_ID (all zero, MASK_CHIP_ID) carries no shape, so only the
	 * hint can tell. Turin's hwID is 8 bytes, the rest of the field zero; Milan and Genoa fill
	 * all 64 bytes and cannot be told apart, so a Genoa hint is believed, anything else is
	 * Milan (the line that shipped v2 firmware first).
	 */
	if (all_zero(r->chip_id, sizeof(r->chip_id)))
		return hint;
	if (all_zero(r->chip_id + 8, sizeof(r->chip_id) - 8))
		return SNP_PRODUCT_TURIN;
	return hint == SNP_PRODUCT_GENOA ? SNP_PRODUCT_GENOA : SNP_PRODUCT_MILAN;
}

static const char *const product_names[] = {
        [SNP_PRODUCT_UNKNOWN] = "unknown",
        [SNP_PRODUCT_MILAN] = "Milan",
        [SNP_PRODUCT_GENOA] = "Genoa",
        [SNP_PRODUCT_TURIN] = "Turin",
};

const char *snp_product_name(enum snp_product p)
{
	if ((unsigned)p >= sizeof(product_names) / sizeof(product_names[0]))
		return "unknown";
	return product_names[p];
}

/*
 * Accepts the bare names and KDS/VCEK product names with a stepping suffix ("Milan-B0"),
 * case-insensitively. "unknown" is not a product and is refused.
 */
int snp_product_from_string(const char *s, enum snp_product *out)
{
	if (!s || !out)
		return -EINVAL;
	for (enum snp_product p = SNP_PRODUCT_MILAN; p <= SNP_PRODUCT_TURIN; p++) {
		size_t n = strlen(product_names[p]);

		if (strncasecmp(s, product_names[p], n) == 0 && (s[n] == '\0' || s[n] == '-')) {
			*out = p;
			return 0;
		}
	}
	return -EINVAL;
}

/*
 * Byte positions inside TCB_VERSION (§1.2). An unknown product uses the Milan/Genoa layout
 * (VCEK structVersion 0), the only layout before Turin.
 */
struct tcb_layout {
	int fmc; /* -1: no FMC field */
	int bootloader, tee, snp, microcode;
};

static const struct tcb_layout layout_milan = {
        .fmc = -1, .bootloader = 0, .tee = 1, .snp = 6, .microcode = 7};
static const struct tcb_layout layout_turin = {
        .fmc = 0, .bootloader = 1, .tee = 2, .snp = 3, .microcode = 7};

static const struct tcb_layout *tcb_layout_of(enum snp_product product)
{
	return product == SNP_PRODUCT_TURIN ? &layout_turin : &layout_milan;
}

static uint8_t tcb_byte(uint64_t raw, int index)
{
	return (uint8_t)(raw >> (8 * index));
}

void snp_tcb_decode(uint64_t raw, enum snp_product product, struct snp_tcb *out)
{
	const struct tcb_layout *l = tcb_layout_of(product);

	*out = (struct snp_tcb){
	        .fmc = l->fmc >= 0 ? tcb_byte(raw, l->fmc) : 0,
	        .bootloader = tcb_byte(raw, l->bootloader),
	        .tee = tcb_byte(raw, l->tee),
	        .snp = tcb_byte(raw, l->snp),
	        .microcode = tcb_byte(raw, l->microcode),
	};
}

uint64_t snp_tcb_encode(const struct snp_tcb *tcb, enum snp_product product)
{
	const struct tcb_layout *l = tcb_layout_of(product);
	uint64_t raw = (uint64_t)tcb->bootloader << (8 * l->bootloader) |
	               (uint64_t)tcb->tee << (8 * l->tee) | (uint64_t)tcb->snp << (8 * l->snp) |
	               (uint64_t)tcb->microcode << (8 * l->microcode);

	if (l->fmc >= 0)
		raw |= (uint64_t)tcb->fmc << (8 * l->fmc);
	return raw;
}
