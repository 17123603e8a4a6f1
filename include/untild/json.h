/* json.h - JSON through json-c, and the little untild adds on top.
 *
 * Build with json-c itself (json_object_new_object, ...) or the ujson_add_*
 * helpers below; json_* is json-c's namespace, this module's is ujson_*.
 *
 * Writing. json-c copies strings as they are (it does not check UTF-8),
 * and text from outside (Subjects, display names, upstream errors) may be
 * any bytes: ujson_str / ujson_add_str / ujson_push_str clean a string
 * first, each invalid sequence becoming U+FFFD. json-c escapes the C0
 * controls (ESC is \u001b); ujson_append escapes also what a terminal acts
 * on (DEL, C1 controls, bidi overrides), so `untilctl --json` can be
 * printed. The helpers return -1 on ENOMEM, so a series of calls can be
 * OR'ed and checked once; ujson_append of NULL (a failed build) marks the
 * strbuf out of memory.
 *
 * A long listing streams (ujson_list_*): one element's tree at a time, since
 * a json-c tree costs about six times its text (docs/DECISIONS.md).
 *
 * Reading: ujson_parse, bounded in size and nesting depth, strict, UTF-8
 * checked, one value and nothing after it. */
#ifndef UNTILD_JSON_H
#define UNTILD_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

struct strbuf;

/* The code point at s (n >= 1 bytes readable); *len its length. An invalid
 * sequence gives -1 and *len the length of its maximal invalid prefix
 * (Unicode's "maximal subpart": a truncated sequence is one error, an
 * overlong or surrogate lead is one error per byte), as Python's
 * decode(errors="replace") counts them. */
long ujson_utf8_next(const unsigned char *s, size_t n, size_t *len);

/* 1 if s (len bytes) is valid UTF-8. */
int ujson_utf8_valid(const char *s, size_t len);

/* s (len bytes) as valid UTF-8, each invalid sequence replaced by U+FFFD:
 * malloc'd and NUL-terminated, its length in *outlen (may be NULL). NULL
 * on ENOMEM. */
char *ujson_utf8_clean(const char *s, size_t len, size_t *outlen);

/* A JSON string of s, cleaned. NULL on ENOMEM (and for s NULL, which
 * json-c writes as null). */
struct json_object *ujson_str(const char *s);

/* Members and elements. -1 on ENOMEM. ujson_add and ujson_push take v
 * whatever happens; v NULL counts as a failed build (-1): an explicit
 * null is ujson_add_str(o, key, NULL). */
int ujson_add_str(struct json_object *o, const char *key, const char *s);
int ujson_add_int(struct json_object *o, const char *key, int64_t v);
int ujson_add_bool(struct json_object *o, const char *key, int v);
int ujson_add(struct json_object *o, const char *key, struct json_object *v);
int ujson_push_str(struct json_object *a, const char *s);
int ujson_push(struct json_object *a, struct json_object *v);

/* Append o's text to b: one line, or pretty (for people), '/' not
 * escaped, terminal controls escaped (above). o is not taken. o NULL sets
 * b->oom. Returns -1 on ENOMEM. */
#define UJSON_PLAIN 0
#define UJSON_PRETTY 1
int ujson_append(struct strbuf *b, struct json_object *o, int pretty);

/* A streamed array, one element per line: [e1,\ne2] or, with a key,
 * {"key":[e1,\ne2],<tail's members>}. A failed element (NULL) marks b out of
 * memory. close takes tail (an object, or NULL for no more members). */
struct ujson_list {
    struct strbuf *b;
    size_t n;
    int wrapped;
};
void ujson_list_open(struct ujson_list *l, struct strbuf *b, const char *key);
void ujson_list_add(struct ujson_list *l, struct json_object *item);
void ujson_list_close(struct ujson_list *l, struct json_object *tail);

/* Parse text (len bytes, no NUL needed) as one JSON value: refused if
 * longer than max_size bytes or nested deeper than max_depth (as json-c's
 * json_tokener_new_ex counts it: a value inside N containers is at depth
 * N + 1, so [[1]] needs 3), if it is not strict JSON, not UTF-8, or has
 * anything but whitespace after it. json-c's strict mode still takes
 * NaN, Infinity, 'quoted' keys, "1." and raw control characters inside
 * strings: check the type of each value you read (json_object_is_type).
 * Returns 0 with *out (JSON null is NULL; json_object_put it), or -1 with
 * the reason in err. */
int ujson_parse(const char *text, size_t len, size_t max_size, int max_depth, struct json_object **out,
                char *err, size_t errsz);

/* The string member key of o: NULL if absent, not a string, or holding a
 * NUL (a "\u0000" escape would cut a C string short). */
const char *ujson_get_str(struct json_object *o, const char *key);

#endif
