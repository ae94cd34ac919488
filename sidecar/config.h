/* SPDX-License-Identifier: MIT */
/*
 * The sidecar's configuration: the Go sidecar's documents (protocols.md §7.1 SkrSideCarArgs,
 * §7.3 EncfsSideCarArgs) accepted unchanged, plus our optional fields in the same documents, plus
 * Port / LogLevel / LogFile. Private to sidecar/.
 *
 * Sources, later ones winning: environment (SkrSideCarArgs, EncfsSideCarArgs, Port, LogLevel,
 * LogFile), then the command line (--skr-args, --encfs-args, --port, --log-level, --log-file,
 * --log-format).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "skr.h"
#include "skr_error.h"

#define SIDECAR_DEFAULT_PORT 8080
#define SIDECAR_ENDPOINTS_MAX 32
#define SIDECAR_FILESYSTEMS_MAX 16
/* Where FUSE mounts and downloads live (<work_dir>/<index>/): a directory of the sidecar's own,
 * since a restart unmounts everything below it. */
#define SIDECAR_DEFAULT_WORK_DIR "/run/confidential-sidecar"

enum sidecar_log_format {
	SIDECAR_LOG_HUMAN = 0,
	SIDECAR_LOG_JSON,
};

/* What the daemon does when a filesystem cannot be mounted ("on_mount_failure"). */
enum sidecar_on_failure {
	SIDECAR_ON_FAILURE_EXIT = 0, /* "exit": clean up and exit non-zero (default) */
	SIDECAR_ON_FAILURE_CONTINUE, /* "continue": keep serving (and the other filesystems) */
};

/* How the image reaches the machine ("access"). */
enum sidecar_access {
	SIDECAR_ACCESS_FUSE = 0, /* "fuse": a lazy FUSE file over a block cache (default) */
	SIDECAR_ACCESS_DOWNLOAD, /* "download": the whole blob to <work_dir>/<index>/image */
};

/* One entry of EncfsSideCarArgs.azure_filesystems (§7.3). */
struct sidecar_filesystem {
	char *azure_url;
	bool azure_url_private;
	char *mount_point; /* absolute, normalised, unique */
	bool read_write;
	/* key */
	char *kid;
	char *kty;
	char *key_ops[SKR_KEY_OPS_MAX];
	size_t n_key_ops;
	char *maa_endpoint;     /* key.authority.endpoint */
	char *akv_endpoint;     /* key.akv.endpoint */
	char *akv_bearer_token; /* key.akv.bearer_token: a secret */
	/* key_derivation (RSA keys) */
	char *kdf_salt_hex;
	char *kdf_label;
	/* raw_key: testing only, refused unless the build allows it */
	char *raw_key_hex; /* a secret */
	/* ours (optional) */
	char *verity_root_hash; /* hex: dm-verity root hash pinning a read-only image */
};

struct sidecar_config {
	/* process */
	uint16_t port;
	char *log_level; /* as given; validated */
	char *log_file;
	enum sidecar_log_format log_format;
	bool log_format_set; /* given in either document (the command line may override) */
	char *audit_file;    /* ours: JSON lines of every attestation and release */

	/* SkrSideCarArgs (§7.1) */
	struct snp_certcache_config certcache; /* certcache.{endpoint_type,endpoint,tee_type,...} */
	char *identity_client_id;              /* identity.client_id */
	char *maa_user_agent;                  /* maaconfig.user_agent */

	/* our additions to SkrSideCarArgs, also accepted in EncfsSideCarArgs azure_info (optional) */
	enum snp_source_kind attestation_source; /* "attestation_source": default auto */
	bool attestation_source_set;             /* given in either document */
	char *virtual_dir;                       /* "virtual_platform_dir" (with source virtual) */
	char *ca_bundle;                         /* "ca_bundle": PEM for every HTTPS call */
	char *imds_endpoint;                     /* "imds_endpoint" (tests, proxies) */
	char *security_context_dir;              /* "security_context_dir" */
	char *cert_cache_dir;                    /* "cert_cache_dir": on-disk VCEK cache */
	long timeout_ms;                         /* "timeout_ms": per upstream request */
	/* "allowed_endpoints": {"attestation": [...], "key_vault": [...]}; by default the
	 * endpoints named in EncfsSideCarArgs. A request naming another endpoint gets 403 before
	 * any token is fetched (confused deputy). */
	char *allowed_maa[SIDECAR_ENDPOINTS_MAX];
	size_t n_allowed_maa;
	char *allowed_akv[SIDECAR_ENDPOINTS_MAX];
	size_t n_allowed_akv;

	/* EncfsSideCarArgs (§7.3) */
	struct sidecar_filesystem filesystems[SIDECAR_FILESYSTEMS_MAX];
	size_t n_filesystems;

	/* our additions to EncfsSideCarArgs (all optional) */
	char *work_dir;   /* "work_dir": absolute; NULL = SIDECAR_DEFAULT_WORK_DIR */
	char *ready_file; /* "ready_file": written (atomically) once every filesystem is mounted */
	enum sidecar_on_failure on_mount_failure; /* "on_mount_failure" */
	enum sidecar_access access;               /* "access" */
	/* "cache": {"block_size", "capacity_blocks", "readahead_blocks"}; 0 = libencfs's default
	 * (512 KiB blocks, 64 of them, 8 read ahead) */
	uint32_t cache_block_size;
	uint32_t cache_capacity_blocks;
	uint32_t cache_readahead_blocks;

	/* Private to config.c: which documents were parsed (each at most once), so that a value
	 * given in both (azure_info vs SkrSideCarArgs) names the other document when it differs. */
	unsigned parsed_docs;
};

/*
 * Load from @envp-style lookups (getenv) and @argc/@argv. Returns 0, 1 when --help or
 * --print-config printed something and the process should exit 0, or -EINVAL with err->msg one
 * line naming the field and the expected form (the caller exits 2).
 */
int sidecar_config_load(int argc, char **argv, struct sidecar_config *out, struct skr_error *err);

/*
 * Parse one base64 (standard or URL-safe, padded or not) JSON document. @what names it in errors
 * ("SkrSideCarArgs"). Exposed for unit tests and the fuzz target. Each document may be parsed
 * once per configuration (the second call fails). On failure @c may hold part of the document:
 * sidecar_config_clear() it.
 */
int sidecar_config_parse_skr_args(const char *b64, size_t len, struct sidecar_config *c,
                                  struct skr_error *err);
int sidecar_config_parse_encfs_args(const char *b64, size_t len, struct sidecar_config *c,
                                    struct skr_error *err);

/* Checks across fields (duplicate mount points, virtual dir with source virtual, ...). */
int sidecar_config_validate(const struct sidecar_config *c, struct skr_error *err);

/* The effective configuration as JSON with every secret replaced by "<redacted>". */
int sidecar_config_print(const struct sidecar_config *c, FILE *f);

/* The attester configuration this configuration implies (pointers borrowed from @c). */
void sidecar_config_attest(const struct sidecar_config *c, struct skr_attest_config *out);

/* Endpoint allowlists: exact host[:port] match, case-insensitive host, optional https://. */
bool sidecar_config_maa_allowed(const struct sidecar_config *c, const char *endpoint);
bool sidecar_config_akv_allowed(const struct sidecar_config *c, const char *endpoint);

void sidecar_config_clear(struct sidecar_config *c);

/* Whether this build accepts raw_key (meson -Dallow_raw_key=true; testing only). */
bool sidecar_config_raw_key_allowed(void);
