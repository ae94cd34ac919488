/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: release policies (protocols.md §5.4). The input is parsed as a policy and,
 * when it parses, evaluated with an explanation against fixed ACI-style claims under two
 * issuers; the same bytes also go to the importkey builder as a claims array. Every refusal
 * must carry a reason.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "skr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char claims[] =
        "{\"iss\":\"https://sharedeus.eus.attest.azure.net\","
        "\"x-ms-attestation-type\":\"sevsnpvm\","
        "\"x-ms-compliance-status\":\"azure-compliant-uvm\","
        "\"x-ms-sevsnpvm-hostdata\":"
        "\"ab12cd34ef56a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6\","
        "\"x-ms-sevsnpvm-is-debuggable\":false,\"x-ms-sevsnpvm-vmpl\":0,"
        "\"x-ms-sevsnpvm-snpfw-svn\":8,\"x-ms-sevsnpvm-microcode-svn\":211,"
        "\"x-ms-ver\":\"1.0\",\"ratio\":1.5,\"big\":18446744073709551615,\"nullclaim\":null,"
        "\"x-ms-runtime\":{\"keys\":[{\"kid\":\"k1\",\"kty\":\"RSA\"}],"
        "\"vm-configuration\":{\"secure-boot\":true,\"tpm-enabled\":\"true\"}},"
        "\"x-ms-isolation-tee\":{\"x-ms-attestation-type\":\"sevsnpvm\"},"
        "\"dotted.name\":\"literal\",\"dotted\":{\"name\":\"nested\"}}";

static const char *const issuers[] = {
        "https://sharedeus.eus.attest.azure.net",
        "https://127.0.0.1:8443",
};

static void check_refusal(int r, const struct skr_error *err)
{
	if (r < 0 && !err->msg[0])
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct skr_policy *p = NULL;
	struct skr_error err = {0};
	char *out = NULL;
	int r;

	r = skr_policy_parse(text, size, &p, &err);
	check_refusal(r, &err);
	if (r == 0) {
		for (size_t i = 0; i < sizeof(issuers) / sizeof(issuers[0]); i++) {
			struct skr_error e = {0};

			r = skr_policy_evaluate(p, issuers[i], claims, strlen(claims), &out, &e);
			check_refusal(r, &e);
			/* A denial always explains itself; an allowed release has nothing to say. */
			if ((r == -EACCES) != (out != NULL))
				__builtin_trap();
			free(out);
			out = NULL;
		}
		skr_policy_free(p);
	}

	skr_error_clear(&err);
	r = skr_policy_build("sharedeus.eus.attest.azure.net", text, size, &out, &err);
	check_refusal(r, &err);
	free(out);
	return 0;
}
