/* SPDX-License-Identifier: MIT */
/*
 * devcloud.json: the settings `devcloud init` chose and `devcloud serve` applies. Only the
 * compliance status and the host names change what the service answers; the platform fields
 * describe the virtual platform for people reading the file.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "cleanup.h"
#include "devcloud.h"
#include "fileio.h"
#include "json_util.h"
#include "ossl.h"

#define SETTINGS_MAX_SIZE (64u * 1024)

void devcloud_settings_clear(struct devcloud_settings *s)
{
	if (!s)
		return;
	free(s->compliance_status);
	for (size_t i = 0; i < s->n_hostnames; i++)
		free(s->hostnames[i]);
	memset(s, 0, sizeof(*s));
}

json_object *devcloud_settings_to_json(const struct devcloud_settings *s)
{
	_cleanup_json_ json_object *root = json_object_new_object();
	json_object *names = json_object_new_array();
	char host_data[65];

	/* @names is owned here until the add below takes it (or puts it). */
	if (!root ||
	    devcloud_json_add(root, "version", json_object_new_int(DEVCLOUD_SETTINGS_VERSION)) <
	            0 ||
	    devcloud_json_add(root, "compliance_status",
	                      json_object_new_string(s->compliance_status)) < 0) {
		json_object_put(names);
		return NULL;
	}
	if (devcloud_json_add(root, "hostnames", names) < 0)
		return NULL;
	for (size_t i = 0; i < s->n_hostnames; i++) {
		json_object *n = json_object_new_string(s->hostnames[i]);

		if (!n || json_object_array_add(names, n) < 0) {
			json_object_put(n);
			return NULL;
		}
	}
	hex_encode(s->host_data, sizeof(s->host_data), host_data);
	if (devcloud_json_add(root, "product",
	                      json_object_new_string(snp_product_name(s->product))) < 0 ||
	    devcloud_json_add(root, "report_version", json_object_new_int((int)s->report_version)) <
	            0 ||
	    devcloud_json_add(root, "debuggable", json_object_new_boolean(s->debuggable)) < 0 ||
	    devcloud_json_add(root, "host_data", json_object_new_string(host_data)) < 0)
		return NULL;
	return TAKE_PTR(root);
}

int devcloud_settings_save(const char *path, const struct devcloud_settings *s,
                           struct skr_error *err)
{
	_cleanup_json_ json_object *root = devcloud_settings_to_json(s);
	const char *text;
	int r;

	if (!root)
		return skr_error_set(err, -ENOMEM, "devcloud.json: out of memory");
	text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
	                                                    JSON_C_TO_STRING_NOSLASHESCAPE);
	r = write_file_atomic(path, text, strlen(text), 0600);
	if (r < 0)
		return skr_error_set(err, r, "cannot write %s: %s", path, strerror(-r));
	return 0;
}

int devcloud_settings_load(const char *path, struct devcloud_settings *out, struct skr_error *err)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_json_ json_object *root = NULL;
	struct devcloud_settings s = {0};
	json_object *names = NULL, *v = NULL;
	const char *str;
	size_t len;
	int r;

	memset(out, 0, sizeof(*out));
	r = read_file(path, SETTINGS_MAX_SIZE, &text, &len);
	if (r < 0)
		return skr_error_set(err, r, "cannot read %s: %s (run 'devcloud init' first)", path,
		                     strerror(-r));
	r = json_parse(text, len, path, &root, err);
	if (r < 0)
		return r;
	if (!json_object_object_get_ex(root, "version", &v) ||
	    json_object_get_int(v) != DEVCLOUD_SETTINGS_VERSION)
		return skr_error_set(err, -EINVAL,
		                     "%s: unsupported settings version (expected %d); re-create "
		                     "the state with 'devcloud init --force'",
		                     path, DEVCLOUD_SETTINGS_VERSION);

	r = json_get_string(root, "compliance_status", true, &str, err);
	if (r < 0)
		goto fail;
	s.compliance_status = strdup(str);
	if (!s.compliance_status)
		goto oom;

	if (!json_object_object_get_ex(root, "hostnames", &names) ||
	    !json_object_is_type(names, json_type_array) || json_object_array_length(names) == 0 ||
	    json_object_array_length(names) > DEVCLOUD_HOSTNAMES_MAX) {
		r = skr_error_set(err, -EINVAL, "%s: 'hostnames' must be an array of 1 to %d names",
		                  path, DEVCLOUD_HOSTNAMES_MAX);
		goto fail;
	}
	for (size_t i = 0; i < json_object_array_length(names); i++) {
		json_object *n = json_object_array_get_idx(names, i);

		if (!json_object_is_type(n, json_type_string)) {
			r = skr_error_set(err, -EINVAL, "%s: hostnames[%zu] is not a string", path,
			                  i);
			goto fail;
		}
		s.hostnames[i] = strdup(json_object_get_string(n));
		if (!s.hostnames[i])
			goto oom;
		s.n_hostnames++;
	}

	r = json_get_string(root, "product", true, &str, err);
	if (r < 0)
		goto fail;
	if (snp_product_from_string(str, &s.product) < 0) {
		r = skr_error_set(err, -EINVAL, "%s: unknown product '%s'", path, str);
		goto fail;
	}
	if (json_object_object_get_ex(root, "report_version", &v))
		s.report_version = (uint32_t)json_object_get_int(v);
	r = json_get_bool(root, "debuggable", false, &s.debuggable, err);
	if (r < 0)
		goto fail;
	r = json_get_string(root, "host_data", false, &str, err);
	if (r < 0)
		goto fail;
	if (str && hex_decode(str, strlen(str), s.host_data, sizeof(s.host_data)) < 0) {
		r = skr_error_set(err, -EINVAL, "%s: host_data is not 64 hex digits", path);
		goto fail;
	}
	*out = s;
	return 0;
oom:
	r = skr_error_set(err, -ENOMEM, "%s: out of memory", path);
fail:
	devcloud_settings_clear(&s);
	return r;
}
