/* SPDX-License-Identifier: MIT */
/*
 * The fixed devcloud state of the devcloud fuzz targets, created once in LLVMFuzzerInitialize:
 * `devcloud init` defaults in a fresh temporary directory, opened with the serve defaults,
 * freed and removed at exit.
 */
#pragma once

#include <stdio.h>
#include <stdlib.h>

#include "devcloud.h"
#include "log.h"
#include "test_fs.h"

static struct devcloud *fuzz_devcloud;

static void fuzz_devcloud_free(void)
{
	devcloud_free(fuzz_devcloud);
}

/* @tmpdir: a static mkdtemp() template ("/tmp/NAME.XXXXXX"). Aborts on failure. */
static struct devcloud *fuzz_devcloud_open(char *tmpdir)
{
	struct devcloud_init_options io;
	struct devcloud_serve_options so;
	struct skr_error err = {0};
	char state[128];

	log_set_level(LOG_LEVEL_ERROR);
	if (!mkdtemp(tmpdir))
		abort();
	test_fs_remove_at_exit(tmpdir);
	snprintf(state, sizeof(state), "%s/state", tmpdir);
	devcloud_init_options_default(&io);
	io.state_dir = state;
	devcloud_serve_options_default(&so);
	so.state_dir = state;
	if (devcloud_state_init(&io, NULL, &err) < 0 ||
	    devcloud_open(&so, &fuzz_devcloud, &err) < 0) {
		fprintf(stderr, "devcloud state: %s\n", skr_error_message(&err));
		abort();
	}
	atexit(fuzz_devcloud_free);
	return fuzz_devcloud;
}
