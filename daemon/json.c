/* json.c - json-c with clean UTF-8 in, terminal-safe text out, bounded
 * parsing (include/untild/json.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "untild/json.h"
#include "untild/strbuf.h"

#define REPLACEMENT "\xef\xbf\xbd"     /* U+FFFD */

long ujson_utf8_next(const unsigned char *s, size_t n, size_t *len)
{
    unsigned c = s[0];
    size_t need;
    unsigned lo = 0x80, hi = 0xbf;      /* the second byte's range (Unicode table 3-7) */
    *len = 1;
    if (c < 0x80)
        return c;
    if (c >= 0xc2 && c <= 0xdf)
        need = 2;
    else if (c >= 0xe0 && c <= 0xef)
        need = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    else if (c >= 0xf0 && c <= 0xf4)
        need = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    else
        return -1;                      /* continuation byte, C0/C1 (overlong), F5..FF */
    long cp = (long)(c & (0x7f >> need));
    for (size_t i = 1; i < need; i++) {
        unsigned d = i < n ? s[i] : 0;
        if (d < (i == 1 ? lo : 0x80) || d > (i == 1 ? hi : 0xbf))
            return -1;                  /* *len: the valid prefix so far */
        cp = cp << 6 | (d & 0x3f);
        *len = i + 1;
    }
    return cp;
}

int ujson_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n;
    for (size_t i = 0; i < len; i += n) {
        if (p[i] < 0x80) {      /* most text is ASCII: no call per byte */
            n = 1;
            continue;
        }
        if (ujson_utf8_next(p + i, len - i, &n) < 0)
            return 0;
    }
    return 1;
}

char *ujson_utf8_clean(const char *s, size_t len, size_t *outlen)
{
    /* At worst every byte becomes three. */
    char *out = len <= (SIZE_MAX - 1) / 3 ? malloc(3 * len + 1) : NULL;
    const unsigned char *p = (const unsigned char *)s;
    size_t k = 0;
    if (!out)
        return NULL;
    for (size_t i = 0, n; i < len; i += n) {
        if (ujson_utf8_next(p + i, len - i, &n) < 0) {
            memcpy(out + k, REPLACEMENT, 3);
            k += 3;
        } else {
            memcpy(out + k, p + i, n);
            k += n;
        }
    }
    out[k] = '\0';
    if (outlen)
        *outlen = k;
    return out;
}

struct json_object *ujson_str(const char *s)
{
    if (!s)
        return NULL;
    size_t len = strlen(s);
    if (ujson_utf8_valid(s, len))
        return json_object_new_string_len(s, (int)(len < INT32_MAX ? len : INT32_MAX));
    size_t n;
    char *c = ujson_utf8_clean(s, len, &n);
    struct json_object *o = c && n < INT32_MAX ? json_object_new_string_len(c, (int)n) : NULL;
    free(c);
    return o;
}

int ujson_add(struct json_object *o, const char *key, struct json_object *v)
{
    if (!v || json_object_object_add(o, key, v) < 0) {
        json_object_put(v);
        return -1;
    }
    return 0;
}

int ujson_add_str(struct json_object *o, const char *key, const char *s)
{
    if (!s)
        return json_object_object_add(o, key, NULL) < 0 ? -1 : 0;
    return ujson_add(o, key, ujson_str(s));
}

int ujson_add_int(struct json_object *o, const char *key, int64_t v)
{
    return ujson_add(o, key, json_object_new_int64(v));
}

int ujson_add_bool(struct json_object *o, const char *key, int v)
{
    return ujson_add(o, key, json_object_new_boolean(v ? 1 : 0));
}

int ujson_push(struct json_object *a, struct json_object *v)
{
    if (!v || json_object_array_add(a, v) < 0) {
        json_object_put(v);
        return -1;
    }
    return 0;
}

int ujson_push_str(struct json_object *a, const char *s)
{
    if (!s)
        return json_object_array_add(a, NULL) < 0 ? -1 : 0;
    return ujson_push(a, ujson_str(s));
}

/* What a terminal acts on beyond C0 (json-c escapes those): DEL, the C1
 * controls (U+009B is CSI), the bidi embeddings, overrides and isolates. */
static int cp_terminal(long cp)
{
    return (cp >= 0x7f && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* json-c's text into b, escaping cp_terminal code points. They can only
 * be inside strings (json-c's own syntax is ASCII), where \uXXXX means
 * the same; an invalid sequence (a key nobody cleaned) becomes U+FFFD. */
static void append_safe(struct strbuf *b, const char *text, size_t len)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t run = 0;     /* start of the bytes not yet copied */
    for (size_t i = 0, n; i < len; i += n) {
        n = 1;
        if (p[i] < 0x7f)
            continue;
        long cp = ujson_utf8_next(p + i, len - i, &n);
        if (cp >= 0 && !cp_terminal(cp))
            continue;
        sb_add(b, p + run, i - run);
        if (cp < 0)
            sb_puts(b, REPLACEMENT);
        else
            sb_printf(b, "\\u%04lx", cp);
        run = i + n;
    }
    sb_add(b, p + run, len - run);
}

int ujson_append(struct strbuf *b, struct json_object *o, int pretty)
{
    size_t len = 0;
    const char *text = o ? json_object_to_json_string_length(o, JSON_C_TO_STRING_NOSLASHESCAPE
                               | (pretty ? JSON_C_TO_STRING_PRETTY : JSON_C_TO_STRING_PLAIN), &len)
                         : NULL;
    if (!text) {
        b->oom = 1;
        return -1;
    }
    append_safe(b, text, len);
    return b->oom ? -1 : 0;
}

void ujson_list_open(struct ujson_list *l, struct strbuf *b, const char *key)
{
    l->b = b;
    l->n = 0;
    l->wrapped = key != NULL;
    if (key) {
        struct json_object *k = ujson_str(key);
        sb_puts(b, "{");
        ujson_append(b, k, UJSON_PLAIN);
        sb_puts(b, ":");
        json_object_put(k);
    }
    sb_puts(b, "[");
}

void ujson_list_add(struct ujson_list *l, struct json_object *item)
{
    if (l->n++)
        sb_puts(l->b, ",\n");
    ujson_append(l->b, item, UJSON_PLAIN);
    json_object_put(item);
}

void ujson_list_close(struct ujson_list *l, struct json_object *tail)
{
    sb_puts(l->b, "]");
    if (l->wrapped) {
        /* The tail's members follow the array: its text after the '{'. */
        struct strbuf t = { 0 };
        if (tail && ujson_append(&t, tail, UJSON_PLAIN) < 0)
            l->b->oom = 1;
        if (t.len > 2) {
            sb_puts(l->b, ",");
            sb_add(l->b, t.p + 1, t.len - 1);
        } else {
            sb_puts(l->b, "}");
        }
        sb_free(&t);
    }
    json_object_put(tail);
}

int ujson_parse(const char *text, size_t len, size_t max_size, int max_depth, struct json_object **out,
                char *err, size_t errsz)
{
    *out = NULL;
    if (len > max_size || len > INT32_MAX) {
        snprintf(err, errsz, "JSON text of %zu bytes exceeds the limit of %zu", len, max_size);
        return -1;
    }
    /* Our check, not JSON_TOKENER_VALIDATE_UTF8: json-c 0.16's lets
     * encoded surrogates (ED A0 80) through. */
    if (!ujson_utf8_valid(text, len)) {
        snprintf(err, errsz, "bad JSON: not UTF-8");
        return -1;
    }
    struct json_tokener *tok = json_tokener_new_ex(max_depth > 0 ? max_depth : 1);
    if (!tok) {
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    struct json_object *v = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error e = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    if (e == json_tokener_continue) {
        /* All of it read and still open: a bare number or literal ends at
         * a space; anything else is cut short. */
        v = json_tokener_parse_ex(tok, " ", 1);
        e = json_tokener_get_error(tok);
        end = len;
    }
    int rc = 0;
    if (e == json_tokener_continue) {
        snprintf(err, errsz, "bad JSON: it ends early (at byte %zu)", len);
        rc = -1;
    } else if (e != json_tokener_success) {
        snprintf(err, errsz, "bad JSON at byte %zu: %s", end, json_tokener_error_desc(e));
        rc = -1;
    } else if (end < len) {
        snprintf(err, errsz, "bad JSON at byte %zu: text after the value", end);
        rc = -1;
    }
    json_tokener_free(tok);
    if (rc < 0)
        json_object_put(v);
    else
        *out = v;
    return rc;
}

const char *ujson_get_str(struct json_object *o, const char *key)
{
    struct json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    const char *s = json_object_get_string(v);
    return strlen(s) == (size_t)json_object_get_string_len(v) ? s : NULL;
}
