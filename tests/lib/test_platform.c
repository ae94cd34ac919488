/* SPDX-License-Identifier: MIT */
#include "test_platform.h"

int test_platform_new(const char *dir, const struct snp_virtual_params *params,
                      struct snp_virtual **out, struct skr_error *err)
{
	struct snp_virtual_params defaults;
	int r;

	if (!params) {
		snp_virtual_params_default(&defaults);
		params = &defaults;
	}
	r = snp_virtual_create(dir, params, err);
	return r < 0 ? r : snp_virtual_open(dir, out, err);
}
