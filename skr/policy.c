/* SPDX-License-Identifier: MIT */
/*
 * Key Vault release policies (protocols.md §5.4): the parser, the evaluator the devcloud key
 * vault runs at release time and the SKR client runs to explain a 403, and the builder importkey
 * uses (§7.4).
 *
 * Semantics where Key Vault's documentation is silent (protocols.md §9 item 2), decided here:
 *
 * - Loose comparison. Policies in the wild compare boolean and integer claims with string
 *   literals ("x-ms-sevsnpvm-is-debuggable": "false", "x-ms-sevsnpvm-vmpl": "0") as well as with
 *   JSON literals, and both work against Key Vault. So a boolean claim equals the strings "true"
 *   / "false" (ASCII case-insensitive: .NET, which Key Vault runs on, spells them "True" /
 *   "False"), and a number equals a string holding a JSON number of the same value: "0" equals 0
 *   and "1.0" equals 1 (numbers compare by value). A boolean never equals a number (false is not
 *   0): no sample relies on that and it would let a 0/1 claim satisfy a boolean condition.
 * - Strings compare exactly, case-sensitively. MAA writes hex claims in lower case, and a policy
 *   holding upper-case hex is denied with an explanation that says the two differ only in case;
 *   a case-insensitive rule cannot be right for every claim (x-ms-policy-hash is base64url, where
 *   case carries information), and a policy must never allow more than it says.
 * - Ordering operators compare numbers: claim and policy value must both be numbers or numeric
 *   strings (the policy side is checked when parsing). Anything else is "not comparable" and the
 *   condition is not met.
 * - Arrays and objects are never equal or unequal to anything: equals, notEquals and the
 *   ordering operators are not met on them ("not comparable"); exists sees them as present.
 * - A claim absent from the token meets no comparison, notEquals included, so a token that lacks
 *   a claim cannot pass a condition written to exclude one value of it; only exists false is met.
 *   A claim whose value is null counts as absent (json-c cannot tell the two apart, and MAA
 *   emits no null claims).
 * - Claim names: the literal top-level key first ("x-ms-foo.bar" may be one claim), then the
 *   name as a '.'-separated path through nested objects. Arrays are not indexable:
 *   "x-ms-runtime.keys" is the keys array itself (present, not comparable), "x-ms-runtime.keys.0"
 *   is absent.
 * - Empty groups are refused when parsing: an empty allOf would allow every token of its
 *   authority, an empty anyOf none, and neither is what a policy author meant.
 *
 * A parsed policy is immutable and owns copies of every string, so one policy can be evaluated
 * from several threads at once.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cleanup.h"
#include "json_util.h"
#include "ossl.h"
#include "skr.h"

DEFINE_CLEANUP_FUNC(struct skr_policy *, skr_policy_free)

/* Key Vault's samples nest two or three levels. 12 keeps the refusal ours: json_parse stops at
 * json-c's 32 JSON levels, which a policy reaches at 14 nested groups. */
#define POLICY_DEPTH_MAX 12
/* Every authority, group and condition counts; a real policy has a few dozen. */
#define POLICY_NODES_MAX 4096
#define POLICY_TEXT_MAX (1024 * 1024)
#define POLICY_CLAIM_MAX 256
#define POLICY_PATH_MAX 384
/* Shown characters of a value in err->msg (one line) and in the explanation (long enough for
 * the longest MAA hex claim, the 128-digit report data). */
#define POLICY_MSG_KEEP 16
#define POLICY_EXPLAIN_KEEP 128
#define POLICY_NUMBER_TEXT_MAX 64

enum policy_op {
	POLICY_OP_EQUALS,
	POLICY_OP_NOT_EQUALS,
	POLICY_OP_LESS,
	POLICY_OP_LESS_OR_EQUALS,
	POLICY_OP_GREATER,
	POLICY_OP_GREATER_OR_EQUALS,
	POLICY_OP_EXISTS,
	_POLICY_OP_MAX,
};

/* One operator per line reads better than the table clang-format would pack. */
/* clang-format off */
static const char *const policy_op_names[_POLICY_OP_MAX] = {
        [POLICY_OP_EQUALS] = "equals",
        [POLICY_OP_NOT_EQUALS] = "notEquals",
        [POLICY_OP_LESS] = "less",
        [POLICY_OP_LESS_OR_EQUALS] = "lessOrEquals",
        [POLICY_OP_GREATER] = "greater",
        [POLICY_OP_GREATER_OR_EQUALS] = "greaterOrEquals",
        [POLICY_OP_EXISTS] = "exists",
};
/* clang-format on */

#define POLICY_OP_LIST "equals, notEquals, less, lessOrEquals, greater, greaterOrEquals, exists"

enum policy_node_type {
	POLICY_NODE_CONDITION,
	POLICY_NODE_ALL_OF,
	POLICY_NODE_ANY_OF,
};

/* A JSON number by value: int64 exactly, anything else (reals, integers above INT64_MAX) as a
 * long double. */
struct number {
	bool is_int;
	int64_t i;
	long double d;
};

struct policy_value {
	json_type type; /* string, int, double or boolean */
	char *text;     /* the string, or the number / boolean as written */
	size_t text_len;
	bool boolean;
	bool is_number; /* numbers, and strings holding a JSON number */
	struct number number;
};

struct policy_node {
	enum policy_node_type type;
	/* POLICY_NODE_CONDITION */
	char *claim;
	enum policy_op op;
	struct policy_value value;
	/* POLICY_NODE_ALL_OF, POLICY_NODE_ANY_OF */
	struct policy_node *children;
	size_t n_children;
};

struct policy_authority {
	char *authority;
	struct policy_node group; /* allOf or anyOf */
};

struct skr_policy {
	struct policy_authority *authorities;
	size_t n_authorities;
};

/* ---------------------------------------------------------------------------------------------
 * Values
 * ------------------------------------------------------------------------------------------- */

static const char *json_type_article(json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null:
		return "null";
	case json_type_boolean:
		return "a boolean";
	case json_type_int:
	case json_type_double:
		return "a number";
	case json_type_string:
		return "a string";
	case json_type_array:
		return "an array";
	case json_type_object:
		return "an object";
	}
	return "an unknown JSON type";
}

/* A string holding exactly one JSON number (RFC 8259 §6 grammar: no '+', no leading zeros, no
 * hex, no inf/nan, no spaces), so "0" and "1.5e3" are numbers and " 1", "0x10", "08" are not. */
static bool number_parse_text(const char *s, size_t len, struct number *out)
{
	char buf[POLICY_NUMBER_TEXT_MAX + 1];
	bool integral = true;
	size_t i = 0;
	char *end;

	if (len == 0 || len > POLICY_NUMBER_TEXT_MAX)
		return false;
	if (s[i] == '-')
		i++;
	if (i < len && s[i] == '0')
		i++;
	else if (i < len && s[i] >= '1' && s[i] <= '9')
		while (i < len && isdigit((unsigned char)s[i]))
			i++;
	else
		return false;
	if (i < len && s[i] == '.') {
		size_t start = ++i;

		integral = false;
		while (i < len && isdigit((unsigned char)s[i]))
			i++;
		if (i == start)
			return false;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		size_t start;

		integral = false;
		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		start = i;
		while (i < len && isdigit((unsigned char)s[i]))
			i++;
		if (i == start)
			return false;
	}
	if (i != len)
		return false;

	memcpy(buf, s, len);
	buf[len] = '\0';
	if (integral) {
		errno = 0;
		long long v = strtoll(buf, &end, 10);

		if (errno == 0 && *end == '\0') {
			out->is_int = true;
			out->i = v;
			out->d = (long double)v;
			return true;
		}
	}
	errno = 0;
	out->d = strtold(buf, &end);
	if (errno == ERANGE && isinf(out->d))
		return false;
	out->is_int = false;
	return *end == '\0' && isfinite(out->d);
}

static bool number_from_json(json_object *v, struct number *out)
{
	if (json_object_is_type(v, json_type_int)) {
		int64_t i = json_object_get_int64(v);

		/* json-c keeps integers above INT64_MAX as uint64 and clamps get_int64. */
		if (i == INT64_MAX && json_object_get_uint64(v) > (uint64_t)INT64_MAX) {
			out->is_int = false;
			out->d = (long double)json_object_get_uint64(v);
			return true;
		}
		out->is_int = true;
		out->i = i;
		out->d = (long double)i;
		return true;
	}
	if (json_object_is_type(v, json_type_double)) {
		double d = json_object_get_double(v);

		if (!isfinite(d))
			return false;
		out->is_int = false;
		out->d = d;
		return true;
	}
	if (json_object_is_type(v, json_type_string))
		return number_parse_text(json_object_get_string(v),
		                         (size_t)json_object_get_string_len(v), out);
	return false;
}

static int number_compare(const struct number *a, const struct number *b)
{
	if (a->is_int && b->is_int)
		return (a->i > b->i) - (a->i < b->i);
	return (a->d > b->d) - (a->d < b->d);
}

/* "true"/"false" in any letter case (see the top of the file). */
static bool bool_word(const char *s, size_t len, bool *out)
{
	if (len == 4 && strncasecmp(s, "true", 4) == 0) {
		*out = true;
		return true;
	}
	if (len == 5 && strncasecmp(s, "false", 5) == 0) {
		*out = false;
		return true;
	}
	return false;
}

static void policy_value_clear(struct policy_value *v)
{
	free(v->text);
	v->text = NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Parsing
 * ------------------------------------------------------------------------------------------- */

struct parse_ctx {
	const char *prefix; /* "release policy: " or "" */
	char path[POLICY_PATH_MAX];
	size_t path_len;
	unsigned nodes;
	struct skr_error *err;
};

__attribute__((format(printf, 2, 3))) static size_t path_push(struct parse_ctx *ctx,
                                                              const char *fmt, ...)
{
	size_t mark = ctx->path_len;
	va_list ap;
	int n;

	if (ctx->path_len >= sizeof(ctx->path) - 1)
		return mark;
	va_start(ap, fmt);
	n = vsnprintf(ctx->path + ctx->path_len, sizeof(ctx->path) - ctx->path_len, fmt, ap);
	va_end(ap);
	if (n > 0)
		ctx->path_len += (size_t)n < sizeof(ctx->path) - ctx->path_len
		                         ? (size_t)n
		                         : sizeof(ctx->path) - ctx->path_len - 1;
	return mark;
}

static void path_pop(struct parse_ctx *ctx, size_t mark)
{
	ctx->path_len = mark;
	ctx->path[mark] = '\0';
}

/* Appends ".name" (or "name" at the root) to the path. */
static size_t path_push_key(struct parse_ctx *ctx, const char *key)
{
	return path_push(ctx, "%s%s", ctx->path_len ? "." : "", key);
}

__attribute__((format(printf, 2, 3))) static int parse_fail(struct parse_ctx *ctx, const char *fmt,
                                                            ...)
{
	char reason[SKR_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	return skr_error_set(ctx->err, -EINVAL, "%s%s%s%s", ctx->prefix, ctx->path,
	                     ctx->path_len ? ": " : "", reason);
}

static int count_node(struct parse_ctx *ctx)
{
	if (++ctx->nodes > POLICY_NODES_MAX)
		return skr_error_set(ctx->err, -E2BIG,
		                     "%smore than %d authorities and conditions (a release policy "
		                     "this large is refused)",
		                     ctx->prefix, POLICY_NODES_MAX);
	return 0;
}

/* A string field copied out of the document; NUL characters would cut it short silently. */
static int dup_string(struct parse_ctx *ctx, json_object *v, const char *what, char **out)
{
	size_t len = (size_t)json_object_get_string_len(v);
	const char *s = json_object_get_string(v);

	if (len == 0)
		return parse_fail(ctx, "'%s' must not be empty", what);
	if (memchr(s, '\0', len))
		return parse_fail(ctx, "'%s' contains a NUL character", what);
	*out = strdup(s);
	if (!*out)
		return skr_error_set(ctx->err, -ENOMEM, "release policy: out of memory");
	return 0;
}

static int parse_value(struct parse_ctx *ctx, enum policy_op op, json_object *v,
                       struct policy_value *out)
{
	const char *name = policy_op_names[op];
	json_type type = json_object_get_type(v);
	const char *text;
	size_t len;

	if (op == POLICY_OP_EXISTS) {
		if (type != json_type_boolean)
			return parse_fail(ctx, "'exists' takes true or false, got %s",
			                  json_type_article(v));
	} else if (type != json_type_string && type != json_type_int && type != json_type_double &&
	           type != json_type_boolean) {
		return parse_fail(ctx, "'%s' takes a string, number or boolean, got %s", name,
		                  json_type_article(v));
	}

	out->type = type;
	out->is_number = number_from_json(v, &out->number);
	if (type == json_type_double && !out->is_number)
		return parse_fail(ctx, "'%s' takes a finite number", name);
	if (op != POLICY_OP_EQUALS && op != POLICY_OP_NOT_EQUALS && op != POLICY_OP_EXISTS &&
	    !out->is_number)
		return parse_fail(ctx, "'%s' takes a number or a string holding a number, got %s",
		                  name, json_type_article(v));
	if (type == json_type_boolean)
		out->boolean = json_object_get_boolean(v);

	if (type == json_type_string) {
		text = json_object_get_string(v);
		len = (size_t)json_object_get_string_len(v);
	} else {
		/* Numbers as written (json-c keeps a real's text); done once here because
		 * json-c serialises into a buffer inside the object. */
		text = json_compact(v);
		len = strlen(text);
	}
	out->text = malloc(len + 1);
	if (!out->text)
		return skr_error_set(ctx->err, -ENOMEM, "release policy: out of memory");
	memcpy(out->text, text, len);
	out->text[len] = '\0';
	out->text_len = len;
	return 0;
}

static enum policy_op policy_op_from_name(const char *key)
{
	for (int op = 0; op < _POLICY_OP_MAX; op++)
		if (strcmp(key, policy_op_names[op]) == 0)
			return (enum policy_op)op;
	return _POLICY_OP_MAX;
}

static bool is_group_key(const char *key)
{
	return strcmp(key, "allOf") == 0 || strcmp(key, "anyOf") == 0;
}

static int parse_group(struct parse_ctx *ctx, const char *key, json_object *arr, unsigned depth,
                       struct policy_node *out);

static int parse_claim_condition(struct parse_ctx *ctx, json_object *obj, struct policy_node *out)
{
	json_object *claim = NULL, *value = NULL;
	enum policy_op op = _POLICY_OP_MAX;
	int r;

	json_object_object_foreach(obj, key, val)
	{
		enum policy_op o = policy_op_from_name(key);

		if (strcmp(key, "claim") == 0) {
			claim = val;
			continue;
		}
		if (is_group_key(key))
			return parse_fail(ctx,
			                  "'%s' cannot be combined with 'claim' (a condition is "
			                  "either a claim comparison or a group)",
			                  key);
		if (o == _POLICY_OP_MAX)
			return parse_fail(
			        ctx, "unknown operator '%s' (operators: " POLICY_OP_LIST ")", key);
		if (op != _POLICY_OP_MAX)
			return parse_fail(
			        ctx, "two operators '%s' and '%s' (a condition takes exactly one)",
			        policy_op_names[op], key);
		op = o;
		value = val;
	}
	if (!json_object_is_type(claim, json_type_string))
		return parse_fail(ctx, "'claim' must be a non-empty string, got %s",
		                  json_type_article(claim));
	out->type = POLICY_NODE_CONDITION;
	r = dup_string(ctx, claim, "claim", &out->claim);
	if (r < 0)
		return r;
	if (strlen(out->claim) > POLICY_CLAIM_MAX)
		return parse_fail(ctx, "claim name longer than %d characters", POLICY_CLAIM_MAX);
	if (op == _POLICY_OP_MAX)
		return parse_fail(ctx, "claim '%s' has no operator (one of: " POLICY_OP_LIST ")",
		                  out->claim);
	out->op = op;
	return parse_value(ctx, op, value, &out->value);
}

static int parse_condition(struct parse_ctx *ctx, json_object *obj, unsigned depth,
                           struct policy_node *out)
{
	const char *group_key = NULL;
	json_object *group = NULL;
	int r;

	r = count_node(ctx);
	if (r < 0)
		return r;
	if (!json_object_is_type(obj, json_type_object))
		return parse_fail(ctx, "expected a condition object, got %s",
		                  json_type_article(obj));
	if (json_object_object_get_ex(obj, "claim", NULL))
		return parse_claim_condition(ctx, obj, out);

	json_object_object_foreach(obj, key, val)
	{
		if (is_group_key(key)) {
			if (group_key)
				return parse_fail(ctx, "both 'allOf' and 'anyOf' (a group takes "
				                       "exactly one)");
			group_key = key;
			group = val;
		} else if (policy_op_from_name(key) != _POLICY_OP_MAX) {
			return parse_fail(ctx, "operator '%s' without a 'claim'", key);
		} else {
			return parse_fail(ctx,
			                  "unknown key '%s' (a condition is {\"claim\": name, "
			                  "<operator>: value} or {\"allOf\"|\"anyOf\": [...]})",
			                  key);
		}
	}
	if (!group_key)
		return parse_fail(ctx, "empty condition (a condition is {\"claim\": name, "
		                       "<operator>: value} or {\"allOf\"|\"anyOf\": [...]})");
	if (depth + 1 > POLICY_DEPTH_MAX)
		return parse_fail(ctx, "groups nested deeper than %d levels", POLICY_DEPTH_MAX);
	return parse_group(ctx, group_key, group, depth + 1, out);
}

static int parse_group(struct parse_ctx *ctx, const char *key, json_object *arr, unsigned depth,
                       struct policy_node *out)
{
	size_t mark = path_push_key(ctx, key), n;
	int r;

	out->type = strcmp(key, "allOf") == 0 ? POLICY_NODE_ALL_OF : POLICY_NODE_ANY_OF;
	if (!json_object_is_type(arr, json_type_array))
		return parse_fail(ctx, "expected an array of conditions, got %s",
		                  json_type_article(arr));
	n = json_object_array_length(arr);
	if (n == 0)
		return parse_fail(ctx, "empty list (a group needs at least one condition)");
	out->children = calloc(n, sizeof(*out->children));
	if (!out->children)
		return skr_error_set(ctx->err, -ENOMEM, "release policy: out of memory");
	out->n_children = n;
	for (size_t i = 0; i < n; i++) {
		size_t m = path_push(ctx, "[%zu]", i);

		r = parse_condition(ctx, json_object_array_get_idx(arr, i), depth,
		                    &out->children[i]);
		if (r < 0)
			return r;
		path_pop(ctx, m);
	}
	path_pop(ctx, mark);
	return 0;
}

static void policy_node_clear(struct policy_node *n)
{
	free(n->claim);
	n->claim = NULL;
	policy_value_clear(&n->value);
	for (size_t i = 0; i < n->n_children; i++)
		policy_node_clear(&n->children[i]);
	free(n->children);
	n->children = NULL;
	n->n_children = 0;
}

static int parse_authority(struct parse_ctx *ctx, json_object *obj, struct policy_authority *out)
{
	json_object *authority = NULL, *group = NULL;
	const char *group_key = NULL;
	int r;

	r = count_node(ctx);
	if (r < 0)
		return r;
	if (!json_object_is_type(obj, json_type_object))
		return parse_fail(ctx, "expected an authority object, got %s",
		                  json_type_article(obj));
	json_object_object_foreach(obj, key, val)
	{
		if (strcmp(key, "authority") == 0) {
			authority = val;
		} else if (is_group_key(key)) {
			if (group_key)
				return parse_fail(ctx, "both 'allOf' and 'anyOf' (an authority "
				                       "takes exactly one)");
			group_key = key;
			group = val;
		} else {
			return parse_fail(ctx,
			                  "unknown key '%s' (an authority has 'authority' and "
			                  "'allOf' or 'anyOf')",
			                  key);
		}
	}
	if (!authority)
		return parse_fail(ctx, "field 'authority' is missing");
	if (!json_object_is_type(authority, json_type_string))
		return parse_fail(ctx, "'authority' must be a string (the MAA issuer URL), got %s",
		                  json_type_article(authority));
	r = dup_string(ctx, authority, "authority", &out->authority);
	if (r < 0)
		return r;
	if (!group_key)
		return parse_fail(ctx, "authority '%s' has neither 'allOf' nor 'anyOf'",
		                  out->authority);
	return parse_group(ctx, group_key, group, 1, &out->group);
}

static int parse_version(struct parse_ctx *ctx, json_object *v)
{
	const char *s;

	if (!json_object_is_type(v, json_type_string))
		return parse_fail(ctx, "'version' must be a string (accepted: \"1.0.0\", \"0.2\" "
		                       "or no version)");
	s = json_object_get_string(v);
	if (strcmp(s, "1.0.0") == 0 || strcmp(s, "0.2") == 0)
		return 0;
	return parse_fail(ctx,
	                  "version '%.32s' is not supported (accepted: \"1.0.0\", \"0.2\" or no "
	                  "version)",
	                  s);
}

static int policy_from_json(json_object *doc, struct parse_ctx *ctx, struct skr_policy **out)
{
	_cleanup_(skr_policy_freep) struct skr_policy *p = NULL;
	json_object *authorities = NULL;
	size_t n;
	int r;

	if (!json_object_is_type(doc, json_type_object))
		return parse_fail(ctx, "expected a JSON object at the top level, got %s",
		                  json_type_article(doc));
	json_object_object_foreach(doc, key, val)
	{
		if (strcmp(key, "version") == 0) {
			r = parse_version(ctx, val);
			if (r < 0)
				return r;
		} else if (strcmp(key, "anyOf") == 0) {
			authorities = val;
		} else if (strcmp(key, "allOf") == 0) {
			return parse_fail(ctx, "top-level 'allOf' is not supported (the top level "
			                       "is an 'anyOf' over authorities)");
		} else {
			return parse_fail(ctx,
			                  "unknown field '%s' (a release policy has 'version' and "
			                  "'anyOf')",
			                  key);
		}
	}
	if (!authorities)
		return parse_fail(ctx, "field 'anyOf' is missing (the top level is an 'anyOf' over "
		                       "authorities)");
	path_push_key(ctx, "anyOf");
	if (!json_object_is_type(authorities, json_type_array))
		return parse_fail(ctx, "expected an array of authorities, got %s",
		                  json_type_article(authorities));
	n = json_object_array_length(authorities);
	if (n == 0)
		return parse_fail(ctx,
		                  "empty list (a release policy needs at least one authority)");

	p = calloc(1, sizeof(*p));
	if (p)
		p->authorities = calloc(n, sizeof(*p->authorities));
	if (!p || !p->authorities)
		return skr_error_set(ctx->err, -ENOMEM, "release policy: out of memory");
	p->n_authorities = n;
	for (size_t i = 0; i < n; i++) {
		size_t mark = path_push(ctx, "[%zu]", i);

		r = parse_authority(ctx, json_object_array_get_idx(authorities, i),
		                    &p->authorities[i]);
		if (r < 0)
			return r;
		path_pop(ctx, mark);
	}
	*out = TAKE_PTR(p);
	return 0;
}

int skr_policy_parse(const char *json, size_t len, struct skr_policy **out, struct skr_error *err)
{
	_cleanup_json_ json_object *doc = NULL;
	struct parse_ctx ctx = {.prefix = "release policy: ", .err = err};
	int r;

	*out = NULL;
	if (!json)
		return skr_error_set(err, -EINVAL, "release policy: no policy given");
	if (len > POLICY_TEXT_MAX)
		return skr_error_set(err, -EFBIG, "release policy: larger than %d bytes",
		                     POLICY_TEXT_MAX);
	r = json_parse(json, len, "release policy", &doc, err);
	if (r < 0)
		return r;
	return policy_from_json(doc, &ctx, out);
}

void skr_policy_free(struct skr_policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_authorities; i++) {
		free(p->authorities[i].authority);
		policy_node_clear(&p->authorities[i].group);
	}
	free(p->authorities);
	free(p);
}

/* ---------------------------------------------------------------------------------------------
 * Evaluation
 * ------------------------------------------------------------------------------------------- */

/*
 * The issuer check: equal strings after dropping one trailing '/' from each, with the scheme
 * and host (up to the first '/' after "://") compared case-insensitively, as URLs define them.
 */
static size_t url_trimmed_len(const char *s)
{
	size_t len = strlen(s);

	if (len > 0 && s[len - 1] == '/')
		len--;
	return len;
}

static size_t url_host_end(const char *s, size_t len)
{
	const char *sep = strstr(s, "://");
	size_t i;

	if (!sep || (size_t)(sep - s) >= len)
		return 0;
	for (i = (size_t)(sep - s) + 3; i < len; i++)
		if (s[i] == '/' || s[i] == '?' || s[i] == '#')
			break;
	return i;
}

static bool issuer_matches(const char *authority, const char *issuer)
{
	size_t alen = url_trimmed_len(authority), ilen = url_trimmed_len(issuer);
	size_t ahost = url_host_end(authority, alen), ihost = url_host_end(issuer, ilen);

	if (alen != ilen || ahost != ihost)
		return false;
	return strncasecmp(authority, issuer, ahost) == 0 &&
	       memcmp(authority + ahost, issuer + ahost, alen - ahost) == 0;
}

/* The claim @name: the literal top-level key, else a '.'-separated path through objects. */
static json_object *claim_lookup(json_object *claims, const char *name)
{
	char segment[POLICY_CLAIM_MAX + 1];
	json_object *cur = claims, *next;
	const char *s = name;

	if (json_object_object_get_ex(claims, name, &next))
		return next;
	if (!strchr(name, '.'))
		return NULL;
	for (;;) {
		size_t len = strcspn(s, ".");

		/* parse_claim_condition() bounded claim names by POLICY_CLAIM_MAX. */
		if (len == 0 || len > POLICY_CLAIM_MAX ||
		    !json_object_is_type(cur, json_type_object))
			return NULL;
		memcpy(segment, s, len);
		segment[len] = '\0';
		if (!json_object_object_get_ex(cur, segment, &next))
			return NULL;
		cur = next;
		if (s[len] == '\0')
			return cur;
		s += len + 1;
	}
}

enum leaf_outcome {
	LEAF_MET,
	LEAF_DIFFERENT,      /* comparable, but the comparison is false */
	LEAF_ABSENT,         /* claim not in the token */
	LEAF_PRESENT,        /* exists false, claim in the token */
	LEAF_NOT_COMPARABLE, /* array/object/null, or not numbers for an ordering operator */
};

struct leaf_result {
	enum leaf_outcome outcome;
	json_object *token; /* borrowed from the claims; NULL when absent */
	bool case_only;     /* strings differing only in ASCII letter case */
};

static bool is_scalar(json_object *v)
{
	json_type t = json_object_get_type(v);

	return t == json_type_string || t == json_type_int || t == json_type_double ||
	       t == json_type_boolean;
}

/* Loose equality of a policy value and a scalar claim (see the top of the file). */
static bool values_equal(const struct policy_value *pv, json_object *tv, bool *case_only)
{
	json_type tt = json_object_get_type(tv);
	struct number n;
	bool b;

	*case_only = false;
	if (tt == json_type_boolean) {
		if (pv->type == json_type_boolean)
			return pv->boolean == (bool)json_object_get_boolean(tv);
		if (pv->type == json_type_string && bool_word(pv->text, pv->text_len, &b))
			return b == (bool)json_object_get_boolean(tv);
		return false;
	}
	if (tt == json_type_int || tt == json_type_double) {
		if (pv->type == json_type_boolean || !pv->is_number)
			return false;
		return number_from_json(tv, &n) && number_compare(&pv->number, &n) == 0;
	}
	/* tv is a string */
	const char *s = json_object_get_string(tv);
	size_t len = (size_t)json_object_get_string_len(tv);

	switch (pv->type) {
	case json_type_string:
		if (len == pv->text_len && memcmp(s, pv->text, len) == 0)
			return true;
		*case_only = len == pv->text_len && strncasecmp(s, pv->text, len) == 0 &&
		             !memchr(s, '\0', len);
		return false;
	case json_type_boolean:
		return bool_word(s, len, &b) && b == pv->boolean;
	case json_type_int:
	case json_type_double:
		return number_parse_text(s, len, &n) && number_compare(&pv->number, &n) == 0;
	default:
		return false;
	}
}

static void eval_leaf(const struct policy_node *n, json_object *claims, struct leaf_result *res)
{
	json_object *tv = claim_lookup(claims, n->claim);
	struct number tn;
	bool met;
	int c;

	*res = (struct leaf_result){.token = tv};
	if (n->op == POLICY_OP_EXISTS) {
		if (n->value.boolean)
			res->outcome = tv ? LEAF_MET : LEAF_ABSENT;
		else
			res->outcome = tv ? LEAF_PRESENT : LEAF_MET;
		return;
	}
	if (!tv) {
		res->outcome = LEAF_ABSENT;
		return;
	}
	if (!is_scalar(tv)) {
		res->outcome = LEAF_NOT_COMPARABLE;
		return;
	}
	switch (n->op) {
	case POLICY_OP_EQUALS:
		met = values_equal(&n->value, tv, &res->case_only);
		break;
	case POLICY_OP_NOT_EQUALS:
		met = !values_equal(&n->value, tv, &res->case_only);
		res->case_only = false;
		break;
	default:
		/* Ordering: parse_value() made sure the policy side is a number. */
		if (json_object_is_type(tv, json_type_boolean) || !number_from_json(tv, &tn)) {
			res->outcome = LEAF_NOT_COMPARABLE;
			return;
		}
		c = number_compare(&tn, &n->value.number);
		met = n->op == POLICY_OP_LESS             ? c < 0
		      : n->op == POLICY_OP_LESS_OR_EQUALS ? c <= 0
		      : n->op == POLICY_OP_GREATER        ? c > 0
		                                          : c >= 0;
		break;
	}
	res->outcome = met ? LEAF_MET : LEAF_DIFFERENT;
}

struct node_result {
	bool met;
	unsigned failures; /* failed conditions that keep the node from being met */
	const struct policy_node *first_failure;
};

static struct node_result eval_node(const struct policy_node *n, json_object *claims)
{
	struct node_result res = {0}, best = {0};
	struct leaf_result leaf;

	if (n->type == POLICY_NODE_CONDITION) {
		eval_leaf(n, claims, &leaf);
		res.met = leaf.outcome == LEAF_MET;
		res.failures = res.met ? 0 : 1;
		res.first_failure = res.met ? NULL : n;
		return res;
	}
	if (n->type == POLICY_NODE_ALL_OF) {
		res.met = true;
		for (size_t i = 0; i < n->n_children; i++) {
			struct node_result c = eval_node(&n->children[i], claims);

			if (c.met)
				continue;
			res.met = false;
			res.failures += c.failures;
			if (!res.first_failure)
				res.first_failure = c.first_failure;
		}
		return res;
	}
	/* anyOf: met by one child; otherwise as far off as its closest child. */
	for (size_t i = 0; i < n->n_children; i++) {
		struct node_result c = eval_node(&n->children[i], claims);

		if (c.met)
			return (struct node_result){.met = true};
		if (i == 0 || c.failures < best.failures)
			best = c;
	}
	return best;
}

/* Writes @s quoted, at most @keep characters, control characters as '?', so a value cannot
 * break the one-line-per-condition layout. */
static void fput_text(FILE *f, const char *s, size_t len, size_t keep)
{
	size_t chars = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		/* Count characters, not bytes, and never cut inside a UTF-8 sequence. */
		if ((c & 0xC0) != 0x80 && chars++ == keep) {
			fputs("…", f);
			return;
		}
		fputc(c < 0x20 || c == 0x7f ? '?' : c, f);
	}
}

static void fput_quoted(FILE *f, const char *s, size_t len, size_t keep)
{
	fputc('\'', f);
	fput_text(f, s, len, keep);
	fputc('\'', f);
}

static void fput_policy_value(FILE *f, const struct policy_value *v, size_t keep)
{
	if (v->type == json_type_string)
		fput_quoted(f, v->text, v->text_len, keep);
	else
		fputs(v->text, f);
}

static void fput_token_value(FILE *f, json_object *v, size_t keep)
{
	switch (json_object_get_type(v)) {
	case json_type_string:
		fput_quoted(f, json_object_get_string(v), (size_t)json_object_get_string_len(v),
		            keep);
		break;
	case json_type_int:
	case json_type_double:
	case json_type_boolean:
		/* The claims document is private to this evaluation, so serialising is safe. */
		fput_text(f, json_compact(v), strlen(json_compact(v)), keep);
		break;
	default:
		fputs(json_type_article(v), f);
		break;
	}
}

/* Characters to show of two strings so that where they differ is visible. */
static size_t keep_for(const struct policy_value *pv, json_object *tv, size_t keep)
{
	size_t i = 0, len;
	const char *s;

	if (pv->type != json_type_string || !json_object_is_type(tv, json_type_string))
		return keep;
	s = json_object_get_string(tv);
	len = (size_t)json_object_get_string_len(tv);
	while (i < len && i < pv->text_len && s[i] == pv->text[i])
		i++;
	/* A few characters past the first difference, within what a one-line message holds. */
	if (i + 8 <= keep)
		return keep;
	return i + 8 < POLICY_EXPLAIN_KEEP ? i + 8 : POLICY_EXPLAIN_KEEP;
}

/* "  NOT met: x-ms-sevsnpvm-hostdata equals 'cd…' (token: 'ab…')" */
static void explain_leaf(FILE *f, const struct policy_node *n, json_object *claims, unsigned indent)
{
	struct leaf_result leaf;

	eval_leaf(n, claims, &leaf);
	fprintf(f, "%*s%s: ", (int)indent, "", leaf.outcome == LEAF_MET ? "met" : "NOT met");
	fput_text(f, n->claim, strlen(n->claim), POLICY_CLAIM_MAX);
	fprintf(f, " %s ", policy_op_names[n->op]);
	fput_policy_value(f, &n->value, POLICY_EXPLAIN_KEEP);
	if (n->op == POLICY_OP_EXISTS) {
		fputs(leaf.token ? " (claim present in the token)"
		                 : " (claim absent from the token)",
		      f);
	} else if (!leaf.token) {
		fputs(" (claim absent from the token)", f);
	} else {
		fputs(" (token: ", f);
		fput_token_value(f, leaf.token, POLICY_EXPLAIN_KEEP);
		if (leaf.case_only)
			fputs(", differs only in letter case: strings compare case-sensitively", f);
		else if (leaf.outcome == LEAF_NOT_COMPARABLE)
			fputs(is_scalar(leaf.token) ? ", not comparable as numbers"
			                            : ", not comparable",
			      f);
		fputc(')', f);
	}
	fputc('\n', f);
}

static void explain_node(FILE *f, const struct policy_node *n, json_object *claims, unsigned indent)
{
	if (n->type == POLICY_NODE_CONDITION) {
		explain_leaf(f, n, claims, indent);
		return;
	}
	fprintf(f, "%*s%s (%s):\n", (int)indent, "",
	        n->type == POLICY_NODE_ALL_OF ? "all of" : "any of",
	        eval_node(n, claims).met ? "met" : "NOT met");
	for (size_t i = 0; i < n->n_children; i++)
		explain_node(f, &n->children[i], claims, indent + 2);
}

/* err->msg for the failed condition @n: "claim X is 'ab…' but the policy requires equals 'cd…'" */
static int deny_condition(const struct policy_node *n, json_object *claims, struct skr_error *err)
{
	_cleanup_free_ char *msg = NULL;
	struct leaf_result leaf;
	size_t msg_len = 0, keep;
	FILE *f;

	eval_leaf(n, claims, &leaf);
	keep = leaf.token ? keep_for(&n->value, leaf.token, POLICY_MSG_KEEP) : POLICY_MSG_KEEP;
	f = open_memstream(&msg, &msg_len);
	if (!f)
		return skr_error_set(err, -ENOMEM, "release policy: out of memory");
	fputs("claim ", f);
	fput_text(f, n->claim, strlen(n->claim), POLICY_CLAIM_MAX);
	if (n->op == POLICY_OP_EXISTS) {
		fputs(leaf.token
		              ? " is present in the token but the policy requires it to be absent"
		              : " is absent from the token but the policy requires it to be "
		                "present",
		      f);
	} else {
		if (leaf.token) {
			fputs(" is ", f);
			fput_token_value(f, leaf.token, keep);
		} else {
			fputs(" is absent from the token", f);
		}
		fprintf(f, " but the policy requires %s ", policy_op_names[n->op]);
		fput_policy_value(f, &n->value, keep);
		if (leaf.case_only)
			fputs(" (they differ only in letter case: strings compare "
			      "case-sensitively)",
			      f);
		else if (leaf.outcome == LEAF_NOT_COMPARABLE)
			fputs(is_scalar(leaf.token) ? " (not comparable as numbers)"
			                            : " (not comparable)",
			      f);
	}
	if (fclose(f) != 0 || !msg)
		return skr_error_set(err, -ENOMEM, "release policy: out of memory");
	return skr_error_set(err, -EACCES, "%s", msg);
}

static int deny_issuer(const struct skr_policy *p, const char *issuer, char **explanation,
                       struct skr_error *err)
{
	_cleanup_free_ char *list = NULL, *lines = NULL;
	size_t list_len = 0, lines_len = 0;
	FILE *fl, *fe;

	fl = open_memstream(&list, &list_len);
	if (!fl)
		return skr_error_set(err, -ENOMEM, "release policy: out of memory");
	fe = open_memstream(&lines, &lines_len);
	if (!fe) {
		fclose(fl);
		return skr_error_set(err, -ENOMEM, "release policy: out of memory");
	}
	fputs("token issuer ", fe);
	fput_quoted(fe, issuer, strlen(issuer), POLICY_EXPLAIN_KEEP);
	fputs(" matches no authority of the release policy:\n", fe);
	for (size_t i = 0; i < p->n_authorities; i++) {
		const char *a = p->authorities[i].authority;

		if (i)
			fputs(", ", fl);
		fput_text(fl, a, strlen(a), POLICY_EXPLAIN_KEEP);
		fputs("  authority ", fe);
		fput_quoted(fe, a, strlen(a), POLICY_EXPLAIN_KEEP);
		fputc('\n', fe);
	}
	/* Both streams must be closed, whatever the first one says. */
	int closed = fclose(fl);

	closed |= fclose(fe);
	if (closed != 0 || !list || !lines)
		return skr_error_set(err, -ENOMEM, "release policy: out of memory");
	skr_error_set(err, -EACCES,
	              "token issuer '%s' is not an authority of the release policy "
	              "(authorities: %s)",
	              issuer, list);
	if (explanation)
		*explanation = TAKE_PTR(lines);
	return -EACCES;
}

static bool issuer_printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

int skr_policy_evaluate(const struct skr_policy *p, const char *issuer, const char *claims_json,
                        size_t claims_len, char **explanation, struct skr_error *err)
{
	_cleanup_json_ json_object *claims = NULL;
	_cleanup_free_ char *text = NULL;
	const struct policy_authority *best = NULL;
	struct node_result best_res = {0};
	size_t text_len = 0;
	FILE *f;
	int r;

	if (explanation)
		*explanation = NULL;
	if (!p || !issuer || !claims_json)
		return skr_error_set(err, -EINVAL,
		                     "release policy: missing policy, issuer or claims");
	r = json_parse(claims_json, claims_len, "token claims", &claims, err);
	if (r < 0)
		return r;
	if (!json_object_is_type(claims, json_type_object))
		return skr_error_set(err, -EINVAL, "token claims are %s, not a JSON object",
		                     json_type_article(claims));
	if (!issuer_printable(issuer))
		return skr_error_set(err, -EINVAL, "token issuer contains control characters");

	for (size_t i = 0; i < p->n_authorities; i++) {
		const struct policy_authority *a = &p->authorities[i];
		struct node_result res;

		if (!issuer_matches(a->authority, issuer))
			continue;
		res = eval_node(&a->group, claims);
		if (res.met)
			return 0;
		if (!best || res.failures < best_res.failures) {
			best = a;
			best_res = res;
		}
	}
	if (!best)
		return deny_issuer(p, issuer, explanation, err);

	r = deny_condition(best_res.first_failure, claims, err);
	if (r != -EACCES || !explanation)
		return r;
	f = open_memstream(&text, &text_len);
	if (!f)
		return r;
	fputs("authority ", f);
	fput_quoted(f, best->authority, strlen(best->authority), POLICY_EXPLAIN_KEEP);
	fputs(" requires ", f);
	/* The authority's own group reads as the header; its conditions follow one per line. */
	fprintf(f, "%s:\n", best->group.type == POLICY_NODE_ALL_OF ? "all of" : "any of");
	for (size_t i = 0; i < best->group.n_children; i++)
		explain_node(f, &best->group.children[i], claims, 2);
	if (fclose(f) == 0 && text)
		*explanation = TAKE_PTR(text);
	return r;
}

/* ---------------------------------------------------------------------------------------------
 * Building (importkey)
 * ------------------------------------------------------------------------------------------- */

/* "https://" + host[:port], or the https URL as given; without a trailing '/'. */
static int authority_from_endpoint(const char *endpoint, char **out, struct skr_error *err)
{
	const char *host = endpoint;
	size_t len;

	if (!endpoint || !*endpoint)
		return skr_error_set(err, -EINVAL, "MAA endpoint is empty (expected host[:port])");
	if (strstr(endpoint, "://")) {
		if (strncasecmp(endpoint, "https://", 8) != 0)
			return skr_error_set(err, -EINVAL,
			                     "MAA endpoint '%.128s': the scheme must be https (MAA "
			                     "tokens are issued by https URLs)",
			                     endpoint);
		host = endpoint + 8;
	}
	for (const char *s = endpoint; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f)
			return skr_error_set(
			        err, -EINVAL,
			        "MAA endpoint contains whitespace or control characters");
	len = strlen(host);
	while (len > 0 && host[len - 1] == '/')
		len--;
	if (len == 0 || host[0] == '/')
		return skr_error_set(err, -EINVAL, "MAA endpoint '%.128s' has no host name",
		                     endpoint);
	if (asprintf(out, "https://%.*s", (int)len, host) < 0)
		return skr_error_set(err, -ENOMEM, "release policy: out of memory");
	return 0;
}

int skr_policy_build(const char *maa_endpoint, const char *claims_json, size_t claims_len,
                     char **policy_json, struct skr_error *err)
{
	_cleanup_json_ json_object *claims = NULL, *policy = NULL;
	_cleanup_free_ char *authority = NULL, *text = NULL;
	_cleanup_(skr_policy_freep) struct skr_policy *check = NULL;
	struct parse_ctx ctx = {.prefix = "", .err = err};
	json_object *any_of;
	size_t n;
	int r;

	*policy_json = NULL;
	r = authority_from_endpoint(maa_endpoint, &authority, err);
	if (r < 0)
		return r;
	if (!claims_json)
		return skr_error_set(err, -EINVAL, "claims are missing");
	r = json_parse(claims_json, claims_len, "claims", &claims, err);
	if (r < 0)
		return r;
	if (!json_object_is_type(claims, json_type_array))
		return skr_error_set(err, -EINVAL, "claims must be an array of arrays, got %s",
		                     json_type_article(claims));
	n = json_object_array_length(claims);
	if (n == 0)
		return skr_error_set(err, -EINVAL,
		                     "claims is empty (a release policy needs at least "
		                     "one array of conditions)");

	policy = json_object_new_object();
	any_of = json_object_new_array();
	if (!policy || !any_of ||
	    json_object_object_add(policy, "version", json_object_new_string("1.0.0")) < 0 ||
	    json_object_object_add(policy, "anyOf", any_of) < 0) {
		json_object_put(any_of);
		return skr_error_set(err, -ENOMEM, "release policy: out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		json_object *set = json_object_array_get_idx(claims, i), *entry, *all_of;
		size_t mark = path_push(&ctx, "claims[%zu]", i), m;

		if (!json_object_is_type(set, json_type_array))
			return parse_fail(&ctx,
			                  "expected an array of conditions, got %s (claims "
			                  "must be an array of arrays)",
			                  json_type_article(set));
		m = json_object_array_length(set);
		if (m == 0)
			return parse_fail(&ctx, "empty list (each inner array needs at least one "
			                        "condition)");
		entry = json_object_new_object();
		all_of = json_object_new_array();
		if (!entry || !all_of || json_object_array_add(any_of, entry) < 0) {
			json_object_put(entry);
			json_object_put(all_of);
			return skr_error_set(err, -ENOMEM, "release policy: out of memory");
		}
		if (json_object_object_add(entry, "authority", json_object_new_string(authority)) <
		            0 ||
		    json_object_object_add(entry, "allOf", all_of) < 0) {
			json_object_put(all_of);
			return skr_error_set(err, -ENOMEM, "release policy: out of memory");
		}
		for (size_t j = 0; j < m; j++) {
			json_object *cond = json_object_array_get_idx(set, j), *copy = NULL;
			struct policy_node node = {0};
			size_t mark_j = path_push(&ctx, "[%zu]", j);

			/* The same rules as a parsed policy, so the error names claims[i][j]. */
			r = parse_condition(&ctx, cond, 1, &node);
			policy_node_clear(&node);
			if (r < 0)
				return r;
			if (json_object_deep_copy(cond, &copy, NULL) < 0 ||
			    json_object_array_add(all_of, copy) < 0) {
				json_object_put(copy);
				return skr_error_set(err, -ENOMEM, "release policy: out of memory");
			}
			path_pop(&ctx, mark_j);
		}
		path_pop(&ctx, mark);
	}

	text = strdup(json_compact(policy));
	if (!text)
		return skr_error_set(err, -ENOMEM, "release policy: out of memory");
	/* Whatever we hand out must parse (e.g. the node limit across all inner arrays). */
	r = skr_policy_parse(text, strlen(text), &check, err);
	if (r < 0)
		return skr_error_prefix(err, "built ");
	*policy_json = TAKE_PTR(text);
	return 0;
}
