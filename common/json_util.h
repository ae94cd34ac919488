/* SPDX-License-Identifier: MIT */
/*
 * Typed field access on json-c objects that names the field in the error, so a bad document
 * yields "field 'report': expected a string" instead of a crash or a silent default.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "skr_error.h"

/* Parse exactly one JSON document of @len bytes (no trailing garbage). @what names it. */
int json_parse(const char *text, size_t len, const char *what, json_object **out,
               struct skr_error *err);

/*
 * Required string field (-ENOENT if absent when @required, -EINVAL if of another type).
 * When optional and absent, *out = NULL and 0 is returned.
 */
int json_get_string(json_object *obj, const char *key, bool required, const char **out,
                    struct skr_error *err);

int json_get_bool(json_object *obj, const char *key, bool required, bool *out,
                  struct skr_error *err);

/* Object-valued field; *out borrowed. */
int json_get_object(json_object *obj, const char *key, bool required, json_object **out,
                    struct skr_error *err);

/* Serialize without escaping '/' and without spaces; pointer valid while @obj lives. */
const char *json_compact(json_object *obj);
