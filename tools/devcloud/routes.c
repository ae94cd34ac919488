/* SPDX-License-Identifier: MIT */
/*
 * The route table: every path devcloud answers, and on which listener. A new service adds its
 * handler file and its lines here.
 */
#include <string.h>
#include <strings.h>

#include "devcloud.h"

const struct devcloud_route devcloud_routes[] = {
        /* MAA (protocols.md §4) */
        {"POST", "/attest/SevSnpVm", DEVCLOUD_MATCH_EXACT_NOCASE, devcloud_handle_attest,
         DEVCLOUD_SERVICE_ATTEST},
        {"GET", "/.well-known/openid-configuration", DEVCLOUD_MATCH_EXACT,
         devcloud_handle_openid_configuration, DEVCLOUD_SERVICE_ATTEST},
        {"GET", "/certs", DEVCLOUD_MATCH_EXACT, devcloud_handle_jwks, DEVCLOUD_SERVICE_ATTEST},
        /* AMD KDS (§3.1) and THIM (§3.4) for the virtual platform */
        {"GET", "/vcek/v1/", DEVCLOUD_MATCH_PREFIX, devcloud_handle_kds, DEVCLOUD_SERVICE_ATTEST},
        {"GET", "/metadata/THIM/amd/certification", DEVCLOUD_MATCH_EXACT, devcloud_handle_thim,
         DEVCLOUD_SERVICE_ATTEST},
        /* Entra client-credentials token endpoint (§6.2): POST /{tenant}/oauth2/v2.0/token */
        {"POST", "/oauth2/v2.0/token", DEVCLOUD_MATCH_SUFFIX, devcloud_handle_entra_token,
         DEVCLOUD_SERVICE_ATTEST},
        /* Key vault (§5) */
        {"PUT", "/keys/", DEVCLOUD_MATCH_PREFIX, devcloud_handle_kv_put, DEVCLOUD_SERVICE_KV},
        {"GET", "/keys/", DEVCLOUD_MATCH_PREFIX, devcloud_handle_kv_get, DEVCLOUD_SERVICE_KV},
        {"POST", "/keys/", DEVCLOUD_MATCH_PREFIX, devcloud_handle_kv_post, DEVCLOUD_SERVICE_KV},
        /* IMDS (§6.1), and THIM where it really lives: on the IMDS address */
        {"GET", "/metadata/identity/oauth2/token", DEVCLOUD_MATCH_EXACT, devcloud_handle_imds_token,
         DEVCLOUD_SERVICE_IMDS},
        {"GET", "/metadata/THIM/amd/certification", DEVCLOUD_MATCH_EXACT, devcloud_handle_thim,
         DEVCLOUD_SERVICE_IMDS},
};

const size_t devcloud_routes_count = sizeof(devcloud_routes) / sizeof(devcloud_routes[0]);

static bool route_matches(const struct devcloud_route *r, const char *path)
{
	switch (r->match) {
	case DEVCLOUD_MATCH_EXACT:
		return strcmp(r->path, path) == 0;
	case DEVCLOUD_MATCH_EXACT_NOCASE:
		return strcasecmp(r->path, path) == 0;
	case DEVCLOUD_MATCH_PREFIX:
		return strncmp(r->path, path, strlen(r->path)) == 0;
	case DEVCLOUD_MATCH_SUFFIX: {
		size_t rl = strlen(r->path), pl = strlen(path);

		return pl > rl && strcmp(path + pl - rl, r->path) == 0;
	}
	}
	return false;
}

int devcloud_dispatch(struct devcloud *dc, const struct devcloud_request *req,
                      struct devcloud_response *resp)
{
	return devcloud_dispatch_service(dc, DEVCLOUD_SERVICE_ATTEST, req, resp);
}

int devcloud_dispatch_service(struct devcloud *dc, enum devcloud_service service,
                              const struct devcloud_request *req, struct devcloud_response *resp)
{
	const struct devcloud_route *wrong_method = NULL;
	char path[256];

	for (size_t i = 0; i < devcloud_routes_count; i++) {
		const struct devcloud_route *r = &devcloud_routes[i];

		if (r->service != service || !route_matches(r, req->path))
			continue;
		if (strcmp(r->method, req->method) == 0)
			return r->handler(dc, req, resp);
		/* HEAD is GET without a body; libmicrohttpd drops the body for us. */
		if (strcmp(req->method, "HEAD") == 0 && strcmp(r->method, "GET") == 0)
			return r->handler(dc, req, resp);
		wrong_method = r;
	}
	/* Client text in a message a client may log: escaped as the access log escapes it. */
	devcloud_log_escape(req->path, path, sizeof(path));
	if (wrong_method) {
		char method[64];
		int ret;

		devcloud_log_escape(req->method, method, sizeof(method));
		ret = devcloud_response_error(resp, 405, "MethodNotAllowed",
		                              "%s is not allowed on %s; use %s", method, path,
		                              wrong_method->method);
		resp->allow = wrong_method->method;
		return ret;
	}
	return devcloud_response_error(resp, 404, "NotFound", "no such path: %s", path);
}
