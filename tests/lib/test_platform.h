/* SPDX-License-Identifier: MIT */
/*
 * Virtual SEV-SNP platforms for tests: created in a (temporary) directory and opened in one
 * step. Each costs an RSA-4096 ARK and ASK (seconds): create them once per test binary.
 */
#pragma once

#include "skr.h"

/*
 * Create a virtual platform in @dir (which must not exist) with @params (NULL: the defaults of
 * snp_virtual_params_default()) and open it into *@out. 0 or a negative errno with @err set.
 */
int test_platform_new(const char *dir, const struct snp_virtual_params *params,
                      struct snp_virtual **out, struct skr_error *err);
