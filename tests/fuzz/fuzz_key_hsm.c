/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the key_hsm decoder and unwrapper (skr/key_wrap.h), which parses what a key
 * vault returns. The wrapping key is fixed (the public test key of
 * shared/testdata/rsa_aes_keywrap_vector.json) and loaded once, so valid seeds reach the
 * RSA-OAEP and RFC 5649 steps.
 *
 * The first input byte selects the form of the rest: even = the key_hsm text as a vault sends
 * it (base64url); odd = the decoded JSON, base64url-encoded here, so that mutations explore the
 * JSON structure instead of mostly breaking the base64.
 *
 * Seeds (corpus/key_hsm/) were made once with key_wrap() and this key: a valid blob per enc in
 * both forms, a BYOK-style 1.0.0 blob with "generator", and malformed ones (wrong kid, unknown
 * enc, bad schema, flipped RSA / AES-KWP byte, truncated ciphertext, truncated JSON, header
 * not an object).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "b64.h"
#include "jwk.h"
#include "key_wrap.h"
#include "secret.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char kek_pem[] = "-----BEGIN RSA PRIVATE KEY-----\n"
                              "MIIEpAIBAAKCAQEAv965SRmyp8zbG5eNFuDCmmiSeaHpujG2bC/keLSuzvDMLO1W\n"
                              "yrUJveaa5bzMoO0pA46pXkmbqHisozVzpiNDLCo6d3z4TrGMeFPf2APIMu+RSrzN\n"
                              "56qvHVyIr5caWfHWk+FMRDwAefyNYRHkdYYkgmFK44hhUdtlCAKEv5UQpFZjvh4i\n"
                              "I9jVBdGYMyBaKQLhjI5WIh+QG6Za5sSuOCFMnmuyuvN5DflpLFz595Ss+EoBIY+N\n"
                              "il6lCtvcGgR+IbjUYHAOs5ajamTzgeO8kx3VCE9HcyKmyUZsiyiF6IDRp2Bpy3NH\n"
                              "TjIz7tmkpTHx7tHnRtlfE2FUv0B6i/QYl/ZA5QIDAQABAoIBAG9Ig9jFIdy3MWII\n"
                              "fVmGlPgvrL0FTuWiTbbj9DSaP0VhXlq0cYFyjSrqZG7ZGSpBQ2d/x/Ya5UBKdX7X\n"
                              "0rLKgvxLpcuF3RLvYZSsuQi18NiyIGfjp901Hwn9kH2fOzZt0NHGe5Cb6H7YHzvs\n"
                              "v7/2RJimS2Q6xo9Om4OQymO/1n4pZ+ZMiTy56AvIYZ/ToD8lorlzkGFNQsljmTSC\n"
                              "IHEqRuyttI0Tf64jNaD8K74EThlZG8AE/yNG2FiRtN37+gAgMhxNWoF64s+9D/G0\n"
                              "1xL96WNP5GmxXidK4BAUwWZmLJTtgUDcGjJbmfSuEMFjpRA9wfcL717jDzB0AImO\n"
                              "OnZSgWECgYEA2swHf+pU8D1vshCBCTx/wGeIMRJE1Nw3YBhvPrUCExMo8M2UAkzs\n"
                              "lKq61xSnh0X7f/Ma28vj9/gT+AHOnoCSdFSFO3dxX8B3y+B3jVvbxx7P+iZrM8J+\n"
                              "VgrqPaXrIpBNPCooieD6O9EGvyC0+somgvtkA3ne2jdxX1rbPaQZr5kCgYEA4H6Y\n"
                              "dWb2F5Dglhby9oXfjaLslIumoTTRFTgygIXHBG0auwMQzwfhuLyzH55mBICn16Ez\n"
                              "LRyqssna5NgfTF0XrZT/BIPo8dSj0hlWvDtvCnZbDMTLYrk+GdypJD2oWmsbB6gB\n"
                              "FjdjU4pv8c/4WjGuuWJ8Vs47+HTBNJlJlr6fWy0CgYBapPJqdRtxWBKBM8Mxn2XR\n"
                              "wVKz+byYbw9l+VmFIhpU6rgoYxLxjQrqYHz9hCoPqdeS35V9/89XOOiU87K1CdEi\n"
                              "7q0vwMEwiR1YUotU/fxkVwiUuvvouqf6X5VBqw5qCFxnE5Qt4w3oYCWqYxN3Xu5r\n"
                              "j1iU9BV2VEfc2FhCBk056QKBgQDChm/tKy6K9QrmgzQ80XwI6ug9P1U/0thpnqyE\n"
                              "GWd+OlwzOFDUVGwO+9PqzgJwXFsTyabirDhte+Ok8HEOZowh6T2g1/x9sFfTsgkq\n"
                              "SgXJ9wymX9As138sQbx+nr7GupBNbhKjAZObzBV8X01AOlTAZsp/HW1xuRnBTiIp\n"
                              "8Tt8cQKBgQDUv6Jpe1/kO0YJ6KlqVcMIZa+aQFamoMavlCNxxBvjoPnVdWB9PtWi\n"
                              "arzVMyAVvTjnT1QvGPJj1dffE+GSrAf3mssdp/tGfMGcgSB0DRcE1jz/JlzEc81F\n"
                              "o9Ki1lCw8ljoaNfJ8K+7wdiQ1V/H+rgL691P/2ZGc4vdOXJvy/hGZA==\n"
                              "-----END RSA PRIVATE KEY-----\n";

static EVP_PKEY *kek;
static char *kek_kid;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	BIO *bio = BIO_new_mem_buf(kek_pem, -1);

	kek = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	if (!kek || jwk_rsa_thumbprint(kek, &kek_kid, NULL) < 0)
		abort();
	return 0;
}

static void unwrap(const char *text, size_t len)
{
	struct skr_error err = {0};
	struct secret *material = NULL;
	enum skr_wrap_alg alg;
	int r;

	r = key_hsm_unwrap(kek, kek_kid, text, len, &alg, &material, &err);
	if (r == 0) {
		/* Success hands out a readable secret of its stated length and a known algorithm. */
		volatile uint8_t sink = 0;

		if (!material || !skr_wrap_alg_name(alg))
			__builtin_trap();
		for (size_t i = 0; i < material->len; i++)
			sink ^= material->data[i];
		(void)sink;
		secret_free(material);
	} else if (r > 0 || !err.msg[0] || material) {
		/* Every failure is a negative errno with a reason, and hands out nothing. */
		__builtin_trap();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = NULL;

	if (size < 1 || size > KEY_HSM_MAX_SIZE)
		return 0;
	if (!(data[0] & 1)) {
		unwrap((const char *)data + 1, size - 1);
		return 0;
	}
	if (b64_encode(data + 1, size - 1, B64_URL_NOPAD, &text) == 0) {
		unwrap(text, strlen(text));
		free(text);
	}
	return 0;
}
