/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "test_http_client.h"

static size_t on_data(char *ptr, size_t size, size_t n, void *userdata)
{
	return fwrite(ptr, size, n, userdata);
}

/* The value of "@name: value\r\n" in @line (@len bytes), or NULL if it is another header. */
static char *header_value(const char *line, size_t len, const char *name)
{
	size_t n = strlen(name);

	if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
		return NULL;
	line += n + 1;
	len -= n + 1;
	while (len && (*line == ' ' || *line == '\t'))
		line++, len--;
	while (len && (line[len - 1] == '\r' || line[len - 1] == '\n'))
		len--;
	return strndup(line, len);
}

static void keep(char **field, char *value)
{
	if (value) {
		free(*field);
		*field = value;
	}
}

static size_t on_header(char *ptr, size_t size, size_t n, void *userdata)
{
	struct test_http_client_response *res = userdata;
	size_t len = size * n;

	keep(&res->allow, header_value(ptr, len, "Allow"));
	keep(&res->www_authenticate, header_value(ptr, len, "WWW-Authenticate"));
	return len;
}

long test_http_client_request(const struct test_http_client_request *req,
                              struct test_http_client_response *res)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hl = NULL;
	FILE *f;
	char *auth = NULL, *ct = NULL;

	memset(res, 0, sizeof(*res));
	f = open_memstream(&res->body, &res->len);
	if (!c || !f) {
		fprintf(stderr, "test_http_client: out of memory\n");
		abort();
	}
	for (size_t i = 0; req->headers && req->headers[i]; i++)
		hl = curl_slist_append(hl, req->headers[i]);
	if (req->bearer) {
		if (asprintf(&auth, "Authorization: Bearer %s", req->bearer) < 0)
			abort();
		hl = curl_slist_append(hl, auth);
	}
	if (req->body) {
		hl = curl_slist_append(hl, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
		                 (curl_off_t)(req->body_len ? req->body_len : strlen(req->body)));
	}
	curl_easy_setopt(c, CURLOPT_URL, req->url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method ? req->method : "GET");
	if (req->ca_bundle)
		curl_easy_setopt(c, CURLOPT_CAINFO, req->ca_bundle);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_TIMEOUT, req->timeout_s ? req->timeout_s : 30L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, res);
	res->rc = curl_easy_perform(c);
	if (res->rc == CURLE_OK) {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &res->status);
		curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
		res->content_type = ct ? strdup(ct) : NULL;
	} else if (!req->quiet) {
		fprintf(stderr, "%s %s: %s\n", req->method ? req->method : "GET", req->url,
		        curl_easy_strerror(res->rc));
	}
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	free(auth);
	fclose(f); /* res->body and res->len are final now */
	return res->status;
}

void test_http_client_response_clear(struct test_http_client_response *res)
{
	free(res->body);
	free(res->content_type);
	free(res->allow);
	free(res->www_authenticate);
	memset(res, 0, sizeof(*res));
}
