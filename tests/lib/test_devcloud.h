/* SPDX-License-Identifier: MIT */
/*
 * A real `devcloud` process for integration tests (the binary in $DEVCLOUD_BIN, which meson
 * sets): `init` a state directory, `serve` it on ephemeral loopback ports, read the ports back
 * from endpoints.json, stop it with SIGTERM or kill it. A served instance is killed when the
 * test exits, even after a failed setup.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct test_devcloud {
	char state[512];     /* the state directory */
	char ca[600];        /* its ca.pem: the trust anchor of every HTTPS endpoint */
	char platform[600];  /* its virtual SEV-SNP platform */
	char endpoints[600]; /* endpoints.json, written once serving */
	char log[600];       /* serve's stderr (the request log); "" = the test's stderr */
	pid_t pid;           /* the serving process, -1 when none */
	int attest_port, kv_port, imds_port;
	char attest[64]; /* localhost:PORT (MAA, KDS, THIM, Entra) */
	char kv[64];     /* localhost:PORT (key vault) */
	char imds[128];  /* http://127.0.0.1:PORT */
	char issuer[80]; /* https://localhost:PORT: the iss of its tokens */
};

/* $DEVCLOUD_BIN, or NULL after saying that it is not set. */
const char *test_devcloud_bin(void);

/*
 * `devcloud @args...` (NULL-terminated, without the program) with stdout to @out_path (NULL:
 * /dev/null), stderr the test's; its exit code, -1 if it did not exit normally.
 */
int test_devcloud_run(const char *const *args, const char *out_path);

/*
 * Set up @dc for the state directory @state_dir (serve's stderr to @log_path, NULL: the
 * test's) and run `devcloud init --state @state_dir @init_args...` (@init_args may be NULL).
 * 0, or -1 after saying why.
 */
int test_devcloud_init(struct test_devcloud *dc, const char *state_dir, const char *log_path,
                       const char *const *init_args);

/*
 * Start `devcloud serve --state DIR @serve_args...` (NULL-terminated, may be NULL: ephemeral
 * ports) and wait up to 30 s for its endpoints.json; fills the ports and URLs. @dc must stay
 * valid until the test exits (a static variable): its pid is killed then. 0, or -1 after
 * saying why.
 */
int test_devcloud_serve(struct test_devcloud *dc, const char *const *serve_args);

/*
 * Lines of the serve log (the request log at --log-level info) containing @needle, after a
 * short pause (a request's log line follows its response). Aborts if the log cannot be read:
 * a count of a missing log would compare equal to itself.
 */
size_t test_devcloud_log_count(const struct test_devcloud *dc, const char *needle);

/*
 * A key vault token from @dc's IMDS (resource https://vault.azure.net), the way an operator
 * fetches one; malloc'ed, or NULL after saying why.
 */
char *test_devcloud_vault_token(const struct test_devcloud *dc);

/*
 * Import @key (@key_len bytes) into @dc's key vault as the exportable oct-HSM key @name with
 * importkey's release policy: HOST_DATA equals @host_hex, not debuggable. 0, or -1 after
 * saying why.
 */
int test_devcloud_import_oct_key(const struct test_devcloud *dc, const char *name,
                                 const uint8_t *key, size_t key_len, const char *host_hex);

/* SIGTERM: its exit code (0 is a clean stop), -1 if a signal ended it, -ETIMEDOUT after 10 s. */
int test_devcloud_stop(struct test_devcloud *dc);

/* SIGKILL it if it runs. */
void test_devcloud_kill(struct test_devcloud *dc);
