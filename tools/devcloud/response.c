/* SPDX-License-Identifier: MIT */
/*
 * The transport-free request/response model every handler uses, so handlers are plain
 * functions a unit test can call. Error bodies have MAA's CloudError shape
 * {"error":{"code","message"}} with Content-Type application/json.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cleanup.h"
#include "devcloud.h"
#include "json_util.h"
#include "ossl.h"

const char *devcloud_request_query(const struct devcloud_request *req, const char *key,
                                   bool *present)
{
	if (present)
		*present = false;
	for (size_t i = 0; i < req->n_query; i++) {
		if (strcmp(req->query[i].key, key) == 0) {
			if (present)
				*present = true;
			return req->query[i].value;
		}
	}
	return NULL;
}

const char *devcloud_request_header(const struct devcloud_request *req, const char *name)
{
	for (size_t i = 0; i < req->n_headers; i++)
		if (strcasecmp(req->headers[i].key, name) == 0)
			return req->headers[i].value;
	return NULL;
}

void devcloud_response_clear(struct devcloud_response *resp)
{
	if (!resp)
		return;
	if (resp->secret_body)
		secure_free(resp->body, resp->body_len);
	else
		free(resp->body);
	memset(resp, 0, sizeof(*resp));
}

int devcloud_response_bytes(struct devcloud_response *resp, unsigned status,
                            const char *content_type, const void *data, size_t len)
{
	char *copy = malloc(len + 1);

	if (!copy)
		return -ENOMEM;
	if (len)
		memcpy(copy, data, len);
	copy[len] = '\0';
	devcloud_response_clear(resp);
	resp->status = status;
	resp->content_type = content_type;
	resp->body = copy;
	resp->body_len = len;
	return 0;
}

int devcloud_response_json(struct devcloud_response *resp, unsigned status, json_object *obj)
{
	const char *text = json_compact(obj);

	if (!text)
		return -ENOMEM;
	return devcloud_response_bytes(resp, status, "application/json; charset=utf-8", text,
	                               strlen(text));
}

int devcloud_response_error(struct devcloud_response *resp, unsigned status, const char *code,
                            const char *fmt, ...)
{
	_cleanup_json_ json_object *root = json_object_new_object();
	json_object *error = json_object_new_object();
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!root || !error) {
		json_object_put(error);
		return -ENOMEM;
	}
	json_object_object_add(root, "error", error);
	json_object_object_add(error, "code", json_object_new_string(code));
	json_object_object_add(error, "message", json_object_new_string(msg));
	return devcloud_response_json(resp, status, root);
}

int devcloud_json_add(json_object *obj, const char *key, json_object *v)
{
	if (!v)
		return -ENOMEM;
	if (json_object_object_add(obj, key, v) < 0) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}
