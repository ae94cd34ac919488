/* SPDX-License-Identifier: MIT */
/*
 * Command-line options of the one-shot commands (attest, release). Private to sidecar/.
 */
#pragma once

#include <stdbool.h>
#include <stdio.h>

#include "skr.h"

enum cli_command {
	CLI_ATTEST,
	CLI_RELEASE,
};

struct cli_options {
	enum cli_command command;
	const char *maa_endpoint;
	const char *runtime_data;
	bool print_token;
	/* release */
	const char *akv_endpoint;
	const char *kid;
	const char *access_token_file; /* a file, never argv: argv is visible to every user */
	const char *enc;
	bool derive;          /* also print the fingerprint of the 32-byte LUKS key */
	const char *kdf_salt; /* hex */
	const char *kdf_label;
	struct skr_attest_config cfg;
};

/*
 * Parse the options after the command word. Returns 0, 1 when --help or --version was printed,
 * or -EINVAL after printing one line naming the option and the expected form (an endpoint
 * other than host[:port] or https://… included).
 */
int cli_parse(enum cli_command command, int argc, char **argv, struct cli_options *o);

void cli_usage(FILE *f);
