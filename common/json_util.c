/* SPDX-License-Identifier: MIT */
#include "json_util.h"

#include <errno.h>
#include <limits.h>

int json_parse(const char *text, size_t len, const char *what, json_object **out,
               struct skr_error *err)
{
	struct json_tokener *tok;
	json_object *obj;
	enum json_tokener_error jerr;
	size_t consumed;

	if (len > INT_MAX)
		return skr_error_set(err, -EFBIG, "%s: JSON document too large", what);
	tok = json_tokener_new();
	if (!tok)
		return skr_error_set(err, -ENOMEM, "%s: out of memory", what);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	obj = json_tokener_parse_ex(tok, text, (int)len);
	jerr = json_tokener_get_error(tok);
	consumed = (size_t)json_tokener_get_parse_end(tok);
	if (!obj && jerr == json_tokener_continue)
		jerr = json_tokener_error_parse_eof;
	json_tokener_free(tok);
	if (!obj || jerr != json_tokener_success) {
		json_object_put(obj);
		return skr_error_set(err, -EINVAL, "%s is not valid JSON: %s", what,
		                     json_tokener_error_desc(jerr));
	}
	/* Trailing whitespace is fine, a second document or garbage is not. */
	for (size_t i = consumed; i < len; i++) {
		char c = text[i];

		if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
			json_object_put(obj);
			return skr_error_set(err, -EINVAL,
			                     "%s is not valid JSON: unexpected data after the "
			                     "document at byte %zu",
			                     what, i);
		}
	}
	*out = obj;
	return 0;
}

static int get_field(json_object *obj, const char *key, bool required, json_type type,
                     const char *type_name, json_object **out, struct skr_error *err)
{
	json_object *v = NULL;

	*out = NULL;
	if (!obj || !json_object_is_type(obj, json_type_object))
		return skr_error_set(err, -EINVAL, "expected a JSON object holding field '%s'",
		                     key);
	if (!json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null)) {
		if (required)
			return skr_error_set(err, -ENOENT, "field '%s' is missing", key);
		return 0;
	}
	if (!json_object_is_type(v, type))
		return skr_error_set(err, -EINVAL, "field '%s': expected %s", key, type_name);
	*out = v;
	return 0;
}

int json_get_string(json_object *obj, const char *key, bool required, const char **out,
                    struct skr_error *err)
{
	json_object *v;
	int r = get_field(obj, key, required, json_type_string, "a string", &v, err);

	*out = v ? json_object_get_string(v) : NULL;
	return r;
}

int json_get_bool(json_object *obj, const char *key, bool required, bool *out,
                  struct skr_error *err)
{
	json_object *v;
	int r = get_field(obj, key, required, json_type_boolean, "true or false", &v, err);

	if (v)
		*out = json_object_get_boolean(v);
	return r;
}

int json_get_object(json_object *obj, const char *key, bool required, json_object **out,
                    struct skr_error *err)
{
	return get_field(obj, key, required, json_type_object, "a JSON object", out, err);
}

const char *json_compact(json_object *obj)
{
	return json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
	                                                   JSON_C_TO_STRING_NOSLASHESCAPE);
}
