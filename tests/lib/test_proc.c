/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_atexit.h"
#include "test_proc.h"

/* Between fork() and exec: no stdio (the parent's buffers); setenv() is the one allocation. */
static void redirect(const char *path, int flags, int target)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0600);

	if (fd < 0 || dup2(fd, target) < 0)
		_exit(126);
}

/* @out_fd, @err_fd: inherited descriptors for stdout and stderr (-1: as @io says). */
static void child_exec(const char *const *argv, const struct test_proc_io *io, int out_fd,
                       int err_fd, pid_t parent)
{
	/* A crashed test must not leave a server holding meson's pipes. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(125);
	if ((out_fd >= 0 && dup2(out_fd, STDOUT_FILENO) < 0) ||
	    (err_fd >= 0 && dup2(err_fd, STDERR_FILENO) < 0))
		_exit(126);
	if (io && io->stdout_path)
		redirect(io->stdout_path, O_TRUNC, STDOUT_FILENO);
	if (io && io->stderr_path)
		redirect(io->stderr_path, O_APPEND, STDERR_FILENO);
	if (io && io->cwd && chdir(io->cwd) < 0)
		_exit(126);
	for (size_t i = 0; io && io->env && io->env[i]; i += 2) {
		if (io->env[i + 1] ? setenv(io->env[i], io->env[i + 1], 1) : unsetenv(io->env[i]))
			_exit(126);
	}
	execv(argv[0], (char *const *)argv);
	_exit(127);
}

static pid_t spawn(const char *const *argv, const struct test_proc_io *io, int out_fd, int err_fd)
{
	pid_t parent = getpid();
	pid_t pid;

	fflush(NULL); /* buffered output must not be written twice */
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0)
		child_exec(argv, io, out_fd, err_fd, parent);
	return pid;
}

pid_t test_proc_spawn(const char *const *argv, const struct test_proc_io *io)
{
	return spawn(argv, io, -1, -1);
}

static int exit_code(int status)
{
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int test_proc_wait(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return exit_code(status);
}

bool test_proc_exited(pid_t *pid, int *status)
{
	int st;

	if (*pid <= 0 || waitpid(*pid, &st, WNOHANG) != *pid)
		return false;
	*pid = -1;
	if (status)
		*status = st;
	return true;
}

int test_proc_stop(pid_t *pid, int sig, int timeout_ms)
{
	int status = 0;

	if (*pid <= 0)
		return -ESRCH;
	if (kill(*pid, sig) < 0) {
		int r = -errno;

		test_proc_kill(pid);
		return r;
	}
	for (int waited = 0; waited <= timeout_ms; waited += 20) {
		if (test_proc_exited(pid, &status))
			return exit_code(status);
		nanosleep(&(struct timespec){.tv_nsec = 20 * 1000 * 1000}, NULL);
	}
	test_proc_kill(pid);
	return -ETIMEDOUT;
}

void test_proc_kill(pid_t *pid)
{
	if (*pid > 0) {
		kill(*pid, SIGKILL);
		waitpid(*pid, NULL, 0);
		*pid = -1;
	}
}

static void kill_at_exit(void *pid)
{
	test_proc_kill(pid);
}

void test_proc_kill_at_exit(pid_t *pid)
{
	test_atexit(kill_at_exit, pid);
}

/* The whole of the unnamed file @f (the child's output) as a NUL-terminated string. */
static int read_back(FILE *f, char **out, size_t *len)
{
	long size;

	if (fflush(f) != 0 || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0)
		return -EIO;
	*out = malloc((size_t)size + 1);
	if (!*out)
		return -ENOMEM;
	if (fread(*out, 1, (size_t)size, f) != (size_t)size) {
		free(*out);
		*out = NULL;
		return -EIO;
	}
	(*out)[size] = '\0';
	*len = (size_t)size;
	return 0;
}

int test_proc_run(const char *const *argv, const char *cwd, struct test_proc_result *res)
{
	FILE *out = tmpfile(), *err = tmpfile(); /* unnamed: nothing to clean up */
	struct test_proc_io io = {.cwd = cwd};
	pid_t pid;
	int r = -EIO;

	memset(res, 0, sizeof(*res));
	if (!out || !err)
		goto done;
	pid = spawn(argv, &io, fileno(out), fileno(err));
	if (pid < 0) {
		r = pid;
		goto done;
	}
	res->status = test_proc_wait(pid);
	r = read_back(out, &res->out, &res->out_len);
	if (r == 0)
		r = read_back(err, &res->err, &res->err_len);
	if (r < 0)
		test_proc_result_clear(res);
done:
	if (out)
		fclose(out);
	if (err)
		fclose(err);
	return r;
}

void test_proc_result_clear(struct test_proc_result *res)
{
	free(res->out);
	free(res->err);
	memset(res, 0, sizeof(*res));
}

const char *test_proc_tool(const char *name)
{
	static const char *const dirs[] = {"/usr/sbin", "/sbin", "/usr/bin", "/bin"};
	static char buf[8][256];
	static unsigned next;
	char *b = buf[next++ % 8];

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(b, 256, "%s/%s", dirs[i], name);
		if (access(b, X_OK) == 0)
			return b;
	}
	fprintf(stderr, "%s is not installed\n", name);
	return NULL;
}
