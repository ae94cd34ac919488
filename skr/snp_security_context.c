/* SPDX-License-Identifier: MIT */
/*
 * The ACI security context (protocols.md §3.4): a directory the UVM mounts into the container
 * with the CCE policy, the host's THIM certificates and the UVM endorsement, each base64 in its
 * own file; older hcsshim versions passed the same values as UVM_* environment variables.
 *
 * Discovery follows the Go sidecar: UVM_SECURITY_CONTEXT_DIR, else the first (byte order, as Go's
 * os.ReadDir sorts) entry of "/" whose name contains "security-context-", else the kata path.
 * A directory named by the caller or by the environment must exist (a typo there should fail at
 * start); a discovered one is optional, since outside ACI there is none.
 *
 * One source for all three values, as the anchor does: the files, unless the reference info
 * from the files is empty, in which case the UVM_* variables replace them as a set (when any is
 * set). Mixing per item could pair a file CCE policy with THIM certificates of another UVM.
 * Line breaks inside a value are dropped: Go's base64 decoder ignores CR and LF, ours does not.
 */
#include "snp_security_context.h"

#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "fileio.h"
#include "log.h"

/* Policies are tens of KiB; the cap only stops a wrong path (a device, a huge file) early. */
#define SC_VALUE_MAX (4u << 20)
#define SC_KATA_DIR "opt/confidential-containers/share/kata-containers"
#define SC_NAME_MARK "security-context-"

struct sc_item {
	const char *file;
	const char *env;
	size_t offset; /* of the char * in struct snp_security_context */
};

static const struct sc_item sc_items[] = {
        {"security-policy-base64", "UVM_SECURITY_POLICY",
         offsetof(struct snp_security_context, security_policy_b64)},
        {"host-amd-cert-base64", "UVM_HOST_AMD_CERTIFICATE",
         offsetof(struct snp_security_context, host_amd_cert_b64)},
        {"reference-info-base64", "UVM_REFERENCE_INFO",
         offsetof(struct snp_security_context, reference_info_b64)},
};

/* 0 for a directory, else -errno of stat or -ENOTDIR. */
static int check_dir(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* The byte-wise first directory under @root whose name contains "security-context-". */
static int scan_root(const char *root, char **out)
{
	DIR *d = opendir(root);
	_cleanup_free_ char *best = NULL;
	struct dirent *de;

	*out = NULL;
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		_cleanup_free_ char *path = NULL;

		if (!strstr(de->d_name, SC_NAME_MARK))
			continue;
		if (best && strcmp(de->d_name, best) >= 0)
			continue;
		path = path_join(root, de->d_name);
		if (!path) {
			closedir(d);
			return -ENOMEM;
		}
		if (check_dir(path) < 0)
			continue;
		free(best);
		best = strdup(de->d_name);
		if (!best) {
			closedir(d);
			return -ENOMEM;
		}
	}
	closedir(d);
	if (best) {
		*out = path_join(root, best);
		if (!*out)
			return -ENOMEM;
	}
	return 0;
}

/* Where to read from; *dir NULL when nothing was configured or found. */
static int find_dir(const char *root, const char *explicit_dir, char **dir, struct skr_error *err)
{
	const char *env = getenv("UVM_SECURITY_CONTEXT_DIR");
	const char *given = NULL, *source = NULL;
	_cleanup_free_ char *kata = NULL;
	int r;

	*dir = NULL;
	if (explicit_dir && *explicit_dir) {
		given = explicit_dir;
		source = "configured";
	} else if (env && *env) {
		given = env;
		source = "from UVM_SECURITY_CONTEXT_DIR";
	}
	if (given) {
		r = check_dir(given);
		if (r < 0)
			return skr_error_set(err, r, "security context directory '%s' (%s): %s",
			                     given, source, skr_strerror(r));
		*dir = strdup(given);
		return *dir ? 0 : skr_error_set(err, -ENOMEM, "security context: out of memory");
	}

	r = scan_root(root, dir);
	if (r < 0)
		return skr_error_set(err, r, "security context: cannot list '%s': %s", root,
		                     skr_strerror(r));
	if (*dir)
		return 0;
	kata = path_join(root, SC_KATA_DIR);
	if (!kata)
		return skr_error_set(err, -ENOMEM, "security context: out of memory");
	if (check_dir(kata) == 0)
		*dir = TAKE_PTR(kata);
	return 0;
}

/*
 * Drop CR and LF anywhere (wrapped base64, a trailing newline) and trailing blanks; empty means
 * absent.
 */
static char *trimmed_or_null(char *s)
{
	size_t n = 0;

	for (size_t i = 0; s[i]; i++)
		if (s[i] != '\n' && s[i] != '\r')
			s[n++] = s[i];
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	s[n] = '\0';
	if (n == 0) {
		free(s);
		return NULL;
	}
	return s;
}

static int read_item(const char *dir, const struct sc_item *it, char **out, struct skr_error *err)
{
	_cleanup_free_ char *path = NULL;
	char *buf = NULL;
	size_t len = 0;
	int r;

	*out = NULL;
	path = path_join(dir, it->file);
	if (!path)
		return skr_error_set(err, -ENOMEM, "security context: out of memory");
	r = read_file(path, SC_VALUE_MAX, &buf, &len);
	if (r == -ENOENT)
		return 0;
	if (r == -EFBIG)
		return skr_error_set(err, r, "security context: '%s' is larger than %u bytes", path,
		                     SC_VALUE_MAX);
	if (r < 0)
		return skr_error_set(err, r, "security context: cannot read '%s': %s", path,
		                     skr_strerror(r));
	if (strlen(buf) != len) {
		free(buf);
		return skr_error_set(err, -EINVAL,
		                     "security context: '%s' contains a NUL byte; expected base64 "
		                     "text",
		                     path);
	}
	*out = trimmed_or_null(buf);
	return 0;
}

static int env_item(const struct sc_item *it, char **out, struct skr_error *err)
{
	const char *v = getenv(it->env);

	*out = NULL;
	if (!v || !*v)
		return 0;
	if (strlen(v) > SC_VALUE_MAX)
		return skr_error_set(err, -EFBIG, "security context: %s is larger than %u bytes",
		                     it->env, SC_VALUE_MAX);
	*out = strdup(v);
	if (!*out)
		return skr_error_set(err, -ENOMEM, "security context: out of memory");
	*out = trimmed_or_null(*out);
	return 0;
}

static char **sc_field(struct snp_security_context *sc, size_t i)
{
	return (char **)(void *)((char *)sc + sc_items[i].offset);
}

static void sc_values_clear(struct snp_security_context *sc)
{
	for (size_t i = 0; i < ELEMENTSOF(sc_items); i++) {
		free(*sc_field(sc, i));
		*sc_field(sc, i) = NULL;
	}
}

int snp_security_context_load_at(const char *root, const char *dir,
                                 struct snp_security_context *out, struct skr_error *err)
{
	struct snp_security_context sc = {0}, env = {0};
	const char *from = "files";
	bool any_env = false;
	int r;

	memset(out, 0, sizeof(*out));
	r = find_dir(root ? root : "/", dir, &sc.dir, err);
	if (r < 0)
		return r;
	for (size_t i = 0; sc.dir && i < ELEMENTSOF(sc_items); i++) {
		r = read_item(sc.dir, &sc_items[i], sc_field(&sc, i), err);
		if (r < 0) {
			snp_security_context_clear(&sc);
			return r;
		}
	}
	/* The anchor's rule: no reference info from the files → the environment, as a set. */
	if (!sc.reference_info_b64) {
		for (size_t i = 0; i < ELEMENTSOF(sc_items); i++) {
			r = env_item(&sc_items[i], sc_field(&env, i), err);
			if (r < 0) {
				snp_security_context_clear(&env);
				snp_security_context_clear(&sc);
				return r;
			}
			any_env = any_env || *sc_field(&env, i);
		}
		if (any_env) {
			sc_values_clear(&sc);
			for (size_t i = 0; i < ELEMENTSOF(sc_items); i++)
				*sc_field(&sc, i) = TAKE_PTR(*sc_field(&env, i));
			from = "environment";
		}
	}
	for (size_t i = 0; i < ELEMENTSOF(sc_items); i++)
		if (*sc_field(&sc, i))
			log_debug("security context: %s from the %s (%zu characters)",
			          sc_items[i].file, from, strlen(*sc_field(&sc, i)));
	log_debug("security context: directory %s", sc.dir ? sc.dir : "(none)");
	*out = sc;
	return 0;
}

int snp_security_context_load(const char *dir, struct snp_security_context *out,
                              struct skr_error *err)
{
	return snp_security_context_load_at("/", dir, out, err);
}

void snp_security_context_clear(struct snp_security_context *sc)
{
	if (!sc)
		return;
	free(sc->dir);
	free(sc->security_policy_b64);
	free(sc->host_amd_cert_b64);
	free(sc->reference_info_b64);
	memset(sc, 0, sizeof(*sc));
}
