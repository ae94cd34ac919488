/* SPDX-License-Identifier: MIT */
#include "daemon.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "audit.h"
#include "encfs_runner.h"
#include "log.h"
#include "logsink.h"
#include "status.h"

/*
 * Signals the main thread takes with sigwait(): blocked before any thread exists (the
 * attester's key pool, MHD, the workers), so no other thread ever runs a handler. SIGUSR1 is
 * how the filesystem runner wakes the main thread once every mount is over; the runner's state,
 * not the signal, decides what happens (a stray SIGUSR1 changes nothing).
 */
static void daemon_signal_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGUSR1);
}

/*
 * At most this many malloc arenas. glibc gives each thread its own arena, up to 8 per CPU (the
 * API has ~18 threads), and every arena keeps its freed memory: measured under 200 concurrent
 * releases (bench/api_load), two arenas hold ~1 MiB less at no measurable CPU cost, the work
 * being RSA key generation rather than allocation. MALLOC_ARENA_MAX in the environment wins.
 */
#define DAEMON_ARENA_MAX 2

static void daemon_limit_arenas(void)
{
	if (getenv("MALLOC_ARENA_MAX"))
		return;
	/* Before any thread exists: arenas already attached to threads stay. */
	if (mallopt(M_ARENA_MAX, DAEMON_ARENA_MAX) != 1)
		log_debug("mallopt(M_ARENA_MAX) failed; malloc keeps its default arenas");
}

/* Core dumps off (a dump would hold released keys and tokens), files private by default. */
static void daemon_harden(void)
{
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		log_warn("prctl(PR_SET_DUMPABLE, 0) failed: %s; core dumps stay possible",
		         skr_strerror(errno));
	umask(077);
}

struct daemon {
	const struct sidecar_config *cfg;
	struct sidecar_logsink *log;
	struct sidecar_audit *audit;
	struct sidecar_status *status;
	struct skr_attester *attester;
	struct sidecar_api api;
	struct sidecar_api_server *server;
	struct sidecar_encfs_runner *runner;
};

static void daemon_release(struct daemon *d)
{
	sidecar_api_server_free(d->server);
	skr_attester_free(d->attester);
	sidecar_status_free(d->status);
	sidecar_audit_free(d->audit);
	/* Last: everything above may still log. */
	sidecar_logsink_free(d->log);
	memset(d, 0, sizeof(*d));
}

/* From a runner thread: wake the main thread's sigwait(). */
static void daemon_mounts_over(void *userdata)
{
	(void)userdata;
	kill(getpid(), SIGUSR1);
}

/*
 * Unmount the filesystems (reverse order, bounded). False when a pipeline or an unmount still
 * runs at the deadline: what it uses (the attester, the runner) must then not be freed.
 */
static bool daemon_unmount(struct daemon *d)
{
	struct skr_error err = {0};
	int r;

	if (!d->runner)
		return true;
	r = sidecar_encfs_runner_stop(d->runner, SIDECAR_UNMOUNT_TIMEOUT_MS, &err);
	if (r == -ETIMEDOUT) {
		log_error("stopping: %s", skr_error_message(&err));
		return false;
	}
	if (r < 0)
		log_error("stopping: unmount: %s; the next start cleans up what is left",
		          skr_error_message(&err));
	d->runner = NULL;
	return true;
}

static int daemon_start(struct daemon *d, const struct sidecar_config *cfg)
{
	const char *mount_points[SIDECAR_FILESYSTEMS_MAX];
	struct skr_attest_config acfg;
	struct skr_error err = {0};
	enum log_level level;
	int r;

	d->cfg = cfg;
	r = sidecar_logsink_new(cfg->log_file, cfg->log_format, &d->log, &err);
	if (r < 0) {
		log_error("%s", err.msg);
		return r;
	}
	sidecar_logsink_install(d->log);
	if (cfg->log_level && log_level_from_string(cfg->log_level, &level) == 0)
		log_set_level(level);

	r = sidecar_audit_new(cfg->audit_file, d->log, &d->audit, &err);
	if (r < 0) {
		log_error("%s", err.msg);
		return r;
	}
	for (size_t i = 0; i < cfg->n_filesystems && i < SIDECAR_FILESYSTEMS_MAX; i++)
		mount_points[i] = cfg->filesystems[i].mount_point;
	r = sidecar_status_new(mount_points, cfg->n_filesystems, &d->status, &err);
	if (r < 0) {
		log_error("%s", err.msg);
		return r;
	}
	sidecar_config_attest(cfg, &acfg);
	r = skr_attester_new(&acfg, &d->attester, &err);
	if (r < 0) {
		log_error("%s", err.msg); /* skr_attester_new names itself */
		return r;
	}
	d->api = (struct sidecar_api){
	        .cfg = cfg,
	        .attester = d->attester,
	        .status = d->status,
	        .audit = d->audit,
	};
	r = sidecar_api_server_start(&d->api, cfg->port, &d->server, &err);
	if (r < 0) {
		log_error("API: %s", err.msg);
		return r;
	}
	sidecar_status_set_ready(d->status, true);
	log_info("confidential-sidecar ready: API on port %u", sidecar_api_server_port(d->server));

	/* The API serves first: /status says "Status NOT OK" until every filesystem is mounted. */
	if (cfg->n_filesystems > 0) {
		struct sidecar_encfs_runner_options ro = {
		        .cfg = cfg,
		        .attester = d->attester,
		        .status = d->status,
		        .audit = d->audit,
		        .done_fn = daemon_mounts_over,
		};

		r = sidecar_encfs_runner_start(&ro, &d->runner, &err);
		if (r < 0) {
			log_error("%s", err.msg);
			return r;
		}
	}
	return 0;
}

static void daemon_reopen(struct daemon *d)
{
	struct skr_error err = {0};

	if (sidecar_logsink_reopen(d->log, &err) < 0)
		log_error("SIGHUP: %s; logging continues to the old file", err.msg);
	skr_error_clear(&err);
	if (sidecar_audit_reopen(d->audit, &err) < 0)
		log_error("SIGHUP: %s; audit records continue to the old file", err.msg);
	log_info("SIGHUP: log files reopened");
}

int sidecar_daemon_run(const struct sidecar_config *cfg)
{
	struct daemon d = {0};
	sigset_t set;
	int sig = 0, exit_code = 0, r;

	daemon_harden();
	daemon_limit_arenas();
	daemon_signal_set(&set);
	r = pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (r != 0) {
		log_error("cannot block signals: %s", skr_strerror(r));
		return 1;
	}
	/* A client that hangs up mid-answer must not kill the daemon. */
	signal(SIGPIPE, SIG_IGN);

	if (daemon_start(&d, cfg) < 0) {
		if (!daemon_unmount(&d))
			_exit(1);
		daemon_release(&d);
		return 1;
	}
	for (;;) {
		r = sigwait(&set, &sig);
		if (r != 0)
			continue;
		if (sig == SIGHUP) {
			daemon_reopen(&d);
			continue;
		}
		if (sig == SIGUSR1) {
			if (d.runner && sidecar_encfs_runner_should_exit(d.runner)) {
				exit_code = 1;
				break;
			}
			continue;
		}
		break;
	}
	if (exit_code)
		log_error("stopping: a filesystem failed to mount (on_mount_failure \"exit\"): "
		          "unmounting the others, then exiting with status 1");
	else
		log_info("%s: stopping: no new connections, waiting up to %d s for %u request(s) "
		         "in flight",
		         sig == SIGTERM ? "SIGTERM" : "SIGINT", SIDECAR_SHUTDOWN_TIMEOUT_MS / 1000,
		         sidecar_api_server_in_flight(d.server));
	sidecar_status_set_ready(d.status, false);
	sidecar_api_server_quiesce(d.server);
	/* Before the drain: the unmounts have their own bound, and a hung request must not
	 * keep the filesystems mounted past it. */
	if (!daemon_unmount(&d)) {
		log_error("stopping: exiting with filesystems still being mounted or unmounted");
		_exit(1);
	}
	if (sidecar_api_server_drain(d.server, SIDECAR_SHUTDOWN_TIMEOUT_MS) < 0) {
		/*
		 * Their threads still use the attester and the connections: freeing either would
		 * crash them. Exit without unwinding; the kernel reclaims the locked pages.
		 */
		log_error("stopping: %u request(s) still running after %d s; exiting without them",
		          sidecar_api_server_in_flight(d.server),
		          SIDECAR_SHUTDOWN_TIMEOUT_MS / 1000);
		_exit(exit_code);
	}
	log_info("stopped");
	daemon_release(&d);
	return exit_code;
}
