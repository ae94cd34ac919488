/* SPDX-License-Identifier: MIT */
/*
 * Endpoint spelling shared by the MAA and Key Vault clients (endpoint.h).
 */
#include "endpoint.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cleanup.h"

DEFINE_CLEANUP_FUNC(CURLU *, curl_url_cleanup)

int endpoint_parse(const char *what, const char *endpoint, const char *scheme_why, CURLU **out,
                   struct skr_error *err)
{
	_cleanup_(curl_url_cleanupp) CURLU *u = NULL;
	_cleanup_free_ char *url = NULL;

	*out = NULL;
	if (!endpoint || !*endpoint)
		return skr_error_set(err, -EINVAL, "%s endpoint is empty", what);
	for (const char *p = endpoint; *p; p++)
		if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
			return skr_error_set(err, -EINVAL,
			                     "%s endpoint \"%.128s\" contains white space", what,
			                     endpoint);
	if (strstr(endpoint, "://")) {
		if (strncasecmp(endpoint, "https://", 8) != 0)
			return skr_error_set(err, -EINVAL,
			                     "%s endpoint \"%.128s\" must use https:// (or be a "
			                     "bare host name)%s",
			                     what, endpoint, scheme_why ? scheme_why : "");
		url = strdup(endpoint);
	} else if (asprintf(&url, "https://%s", endpoint) < 0) {
		url = NULL;
	}
	if (!url)
		return skr_error_set(err, -ENOMEM, "out of memory");

	u = curl_url();
	if (!u)
		return skr_error_set(err, -ENOMEM, "out of memory");
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
		return skr_error_set(err, -EINVAL,
		                     "%s endpoint \"%.128s\" is not a valid host or URL", what,
		                     endpoint);
	*out = TAKE_PTR(u);
	return 0;
}

bool endpoint_has_part(CURLU *u, CURLUPart what)
{
	char *part = NULL;
	CURLUcode rc = curl_url_get(u, what, &part, 0);

	curl_free(part);
	return rc == CURLUE_OK;
}
