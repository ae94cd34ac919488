/* SPDX-License-Identifier: MIT */
/*
 * Base64 in the three spellings the Azure wire formats mix (protocols.md, preamble): standard
 * with padding, base64url with padding (Go's URLEncoding, what the anchor sends to MAA) and
 * base64url without padding (JWS/JWK). The transform itself is OpenSSL's; this file only maps
 * alphabets and padding and rejects anything that is not base64.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

enum b64_variant {
	B64_STD,       /* RFC 4648 §4, padded */
	B64_URL,       /* RFC 4648 §5, padded */
	B64_URL_NOPAD, /* RFC 4648 §5, no '=' */
};

/* Which inputs b64_decode() accepts. */
enum {
	B64_ACCEPT_STD = 1 << 0,  /* '+' '/' alphabet */
	B64_ACCEPT_URL = 1 << 1,  /* '-' '_' alphabet */
	B64_REQUIRE_PAD = 1 << 2, /* length must be a multiple of 4 (Go StdEncoding) */
	B64_ACCEPT_ANY = B64_ACCEPT_STD | B64_ACCEPT_URL,
};

/* Encode; *out is NUL-terminated and malloc'ed. Returns 0 or -ENOMEM. */
int b64_encode(const void *in, size_t len, enum b64_variant variant, char **out);

/*
 * Decode @len characters of @in. Padding is optional unless B64_REQUIRE_PAD; the two
 * alphabets may not be mixed in one string; whitespace is refused; only the canonical encoding
 * is accepted (non-zero bits after the data in the last character, "QR==" for "A", are refused,
 * so each byte string has exactly one spelling). *out is malloc'ed with one spare NUL byte
 * after *out_len bytes (so decoded text can be used as a C string). Intermediate copies are
 * erased. Returns 0, -EINVAL for input that is not base64 of the accepted kinds, or -ENOMEM.
 */
int b64_decode(const char *in, size_t len, unsigned flags, uint8_t **out, size_t *out_len);

struct secret;

/*
 * b64_decode() for key material: the bytes land in a struct secret (locked, erased when freed),
 * with a NUL after (*out)->len bytes.
 */
int b64_decode_secret(const char *in, size_t len, unsigned flags, struct secret **out);

/* Lower-case hex; @out must hold 2*len+1 bytes. */
void hex_encode(const void *in, size_t len, char *out);

/* Hex (either case) of exactly 2*@len characters into @out. Returns 0 or -EINVAL. */
int hex_decode(const char *in, size_t in_len, uint8_t *out, size_t len);

/* Hex of any even length into a malloc'ed buffer. Returns 0, -EINVAL or -ENOMEM. */
int hex_decode_alloc(const char *in, size_t in_len, uint8_t **out, size_t *out_len);
