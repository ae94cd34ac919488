/* SPDX-License-Identifier: MIT */
/*
 * Child processes of integration tests: start a binary with its output redirected, wait for it
 * (with a bound), stop or kill it, and run one to completion capturing stdout, stderr and the
 * exit code. Children die with the test (PR_SET_PDEATHSIG), and those registered with
 * test_proc_kill_at_exit() are killed when it exits, so no server outlives a failed run.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

/* How a child starts; all NULL: the test's directory, stdout and stderr, environment. */
struct test_proc_io {
	const char *cwd;
	const char *stdout_path; /* created or truncated, 0600 */
	const char *stderr_path; /* created or appended to, 0600 (a server's log over restarts) */
	/* name, value pairs set in the child (value NULL: unset), NULL-terminated */
	const char *const *env;
};

/* Start @argv (argv[0] the binary's path, NULL-terminated); the pid or -errno. */
pid_t test_proc_spawn(const char *const *argv, const struct test_proc_io *io);

/* @pid's exit code, -1 if a signal ended it (or waitpid failed). Blocks. */
int test_proc_wait(pid_t pid);

/*
 * Whether *@pid has ended (without blocking); if so *@pid is set to -1 and *@status (may be
 * NULL) gets its wait status.
 */
bool test_proc_exited(pid_t *pid, int *status);

/*
 * Send @sig to *@pid and wait up to @timeout_ms for it to end: its exit code, -1 if a signal
 * ended it, -ETIMEDOUT if it did not end in time (it is then killed). *@pid becomes -1.
 */
int test_proc_stop(pid_t *pid, int sig, int timeout_ms);

/* SIGKILL *@pid and reap it, if it is > 0; *@pid becomes -1. */
void test_proc_kill(pid_t *pid);

/* Kill *@pid (read at exit: a static variable) when the test process exits. */
void test_proc_kill_at_exit(pid_t *pid);

/* The outcome of test_proc_run(). */
struct test_proc_result {
	int status; /* exit code; -1 if a signal ended it */
	char *out;  /* stdout, NUL-terminated */
	char *err;  /* stderr, NUL-terminated */
	size_t out_len, err_len;
};

/* Run @argv to completion in @cwd (NULL: here) with stdout and stderr captured; 0 or -errno. */
int test_proc_run(const char *const *argv, const char *cwd, struct test_proc_result *res);

void test_proc_result_clear(struct test_proc_result *res);

/*
 * The full path of the system tool @name (e2fsprogs, cryptsetup...) in /usr/sbin, /sbin,
 * /usr/bin or /bin: test_proc_run() does not search PATH. One of 8 rotating buffers, so one
 * command line may name several tools; NULL after saying that it is not installed.
 */
const char *test_proc_tool(const char *name);
