/* SPDX-License-Identifier: MIT */
/*
 * The token issuer is the name the client dialled, as with MAA where iss is
 * https://<instance>: a sidecar that calls localhost:PORT gets iss https://localhost:PORT and
 * verifies the token against the same origin. Only names of devcloud's TLS certificate are
 * accepted, so a forged Host header cannot make devcloud vouch for another issuer.
 *
 * The Host header is kept as sent (clients compare iss with the origin they dialled, byte for
 * byte). The port is kept as sent and not compared with the listening port: behind a port forward
 * (a VM's guestfwd, a container mapping) the client's port differs from devcloud's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "devcloud.h"

#define HOST_MAX 300

static bool port_valid(const char *p)
{
	unsigned long v = 0;

	if (!*p || strlen(p) > 5)
		return false;
	for (const char *c = p; *c; c++) {
		if (*c < '0' || *c > '9')
			return false;
		v = v * 10 + (unsigned long)(*c - '0');
	}
	return v >= 1 && v <= 65535;
}

int devcloud_issuer_from_host(const struct devcloud_settings *s, const char *host, char **out,
                              struct skr_error *err)
{
	char name[HOST_MAX + 1];
	const char *port = NULL;
	size_t len;

	if (!host || !*host)
		return skr_error_set(err, -EINVAL,
		                     "the request has no Host header; it names the token issuer");
	len = strlen(host);
	if (len > HOST_MAX)
		return skr_error_set(err, -EINVAL, "Host header is longer than %d characters",
		                     HOST_MAX);
	if (host[0] == '[') {
		/* [IPv6]:port */
		const char *end = strchr(host, ']');

		if (!end || (end[1] && end[1] != ':'))
			return skr_error_set(err, -EINVAL, "Host header '%s' is malformed", host);
		snprintf(name, sizeof(name), "%.*s", (int)(end - host - 1), host + 1);
		if (end[1] == ':')
			port = end + 2;
	} else {
		const char *colon = strchr(host, ':');

		if (colon && strchr(colon + 1, ':'))
			return skr_error_set(err, -EINVAL,
			                     "Host header '%s' is malformed (IPv6 addresses need "
			                     "brackets)",
			                     host);
		snprintf(name, sizeof(name), "%.*s", (int)(colon ? (size_t)(colon - host) : len),
		         host);
		if (colon)
			port = colon + 1;
	}
	if (port && !port_valid(port))
		return skr_error_set(err, -EINVAL, "Host header '%s' has an invalid port", host);

	for (size_t i = 0; i < s->n_hostnames; i++) {
		if (strcasecmp(s->hostnames[i], name) != 0)
			continue;
		if (asprintf(out, "https://%s", host) < 0) {
			*out = NULL;
			return skr_error_set(err, -ENOMEM, "out of memory");
		}
		return 0;
	}
	return skr_error_set(err, -EINVAL,
	                     "Host header '%s' is not a name of devcloud's TLS certificate; use "
	                     "one of the names given to 'devcloud init --hostname' (localhost, "
	                     "127.0.0.1, ::1 and %zu more)",
	                     host, s->n_hostnames > 3 ? s->n_hostnames - 3 : 0);
}
