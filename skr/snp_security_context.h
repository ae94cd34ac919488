/* SPDX-License-Identifier: MIT */
/*
 * Private to libskr (and its tests): snp_security_context_load() with the filesystem root that
 * discovery searches made explicit, so tests can build a fake "/" in a temporary directory.
 */
#pragma once

#include "skr.h"

/*
 * As snp_security_context_load(), with @root standing for "/" when discovering the directory
 * (the "security-context-*" scan and the kata path). An explicit @dir and the
 * UVM_SECURITY_CONTEXT_DIR value are used as given, not under @root.
 */
int snp_security_context_load_at(const char *root, const char *dir,
                                 struct snp_security_context *out, struct skr_error *err);
