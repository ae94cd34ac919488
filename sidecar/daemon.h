/* SPDX-License-Identifier: MIT */
/*
 * The daemon's life: hardening, logging, the attester, the HTTP API, signals. Private to
 * sidecar/; main.c calls it once the configuration is loaded.
 */
#pragma once

#include "config.h"

/* How long SIGTERM/SIGINT waits for requests in flight before the process exits anyway. */
#define SIDECAR_SHUTDOWN_TIMEOUT_MS 10000

/*
 * Run until SIGTERM or SIGINT:
 *   - at start: core dumps off (PR_SET_DUMPABLE 0), umask 077, SIGTERM/SIGINT/SIGHUP blocked
 *     in every thread and taken synchronously by this one, SIGPIPE ignored; the log sink
 *     (cfg->log_file or stderr, cfg->log_format, cfg->log_level), the audit trail, the status,
 *     the attester of sidecar_config_attest(), the API on 127.0.0.1/::1 port cfg->port; then
 *     the filesystems of EncfsSideCarArgs (encfs_runner.h), mounted in parallel while the API
 *     serves, /status "Status NOT OK" until all are mounted;
 *   - a filesystem failed and on_mount_failure is "exit" (the default): the same stop as
 *     SIGTERM, then exit code 1;
 *   - SIGHUP: reopen the log file and the audit file;
 *   - SIGTERM/SIGINT: /status turns "Status NOT OK", the listeners close (new connections are
 *     refused), the filesystems are unmounted in reverse order (SIDECAR_UNMOUNT_TIMEOUT_MS),
 *     requests in flight get SIDECAR_SHUTDOWN_TIMEOUT_MS to finish, everything is released and
 *     0 is returned. Requests still running after that are abandoned: the process
 *     exits 0 at once (_exit) rather than free what they use.
 * Returns the exit code: 0, or 1 when the daemon could not start (reason logged, one line) or a
 * filesystem failed to mount under on_mount_failure "exit".
 */
int sidecar_daemon_run(const struct sidecar_config *cfg);
