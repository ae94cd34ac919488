/* SPDX-License-Identifier: MIT */
/*
 * Private to libskr: the parsing half of a Key Vault release answer (protocols.md §5.2), split
 * from its verification so that the parser of this untrusted input can be fuzzed on its own.
 */
#pragma once

#include <stddef.h>

#include <json-c/json.h>
#include <openssl/x509.h>

#include "jwt.h"
#include "skr.h"
#include "skr_error.h"

/* A release answer's parts, decoded but not yet verified. */
struct release_answer {
	char *jws;              /* the compact JWS ("value"), for signature verification */
	struct jwt jwt;         /* its decoded header and payload */
	STACK_OF(X509) * x5c;   /* header x5c: leaf first, then intermediates */
	const char *kid;        /* response.key.key.kid, or NULL (borrowed from jwt.payload) */
	const char *kty;        /* response.key.key.kty */
	const char *key_hsm;    /* response.key.key.key_hsm */
	json_object *key_ops;   /* array of strings (at most SKR_KEY_OPS_MAX), or NULL */
	enum skr_key_type type; /* from kty */
};

/*
 * Parse @body ({"value": "<JWS>"}): the JWS must be RS256 with an x5c array of 1..8 DER
 * certificates and a payload holding response.key.key.{kty, key_hsm[, kid, key_ops]}.
 * Errors: -EPROTO for anything malformed (naming the member), -ENOTSUP "released key type X is
 * not supported" for a kty other than oct/RSA/EC (and -HSM), -ENOMEM.
 */
int release_answer_parse(const char *body, size_t len, struct release_answer *out,
                         struct skr_error *err);
void release_answer_clear(struct release_answer *a);
