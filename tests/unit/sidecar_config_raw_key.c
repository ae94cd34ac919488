/* SPDX-License-Identifier: MIT */
/*
 * sidecar/config.c as a build with meson -Dallow_raw_key=true compiles it, so that one test run
 * covers both builds: test_sidecar_config_raw_key links this object ahead of libsidecar (whose
 * config.o the linker then never pulls in).
 */
#define SIDECAR_ALLOW_RAW_KEY 1
#include "../../sidecar/config.c"
