/* fuzz_json.c - libFuzzer target for the json module: arbitrary bytes as
 * a request body (ujson_parse, small limits) and as a string from mail.
 * A string goes through ujson_str and back unchanged but for U+FFFD, the
 * text is valid UTF-8 with no raw control, and a parsed value written out
 * parses again to the same text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "untild/json.h"
#include "untild/strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const struct strbuf *b)
{
    if (!ujson_utf8_valid(b->p, b->len))
        abort();
    for (size_t i = 0; i < b->len; i++)
        if ((unsigned char)b->p[i] < 0x20 || b->p[i] == 0x7f)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[128];
    struct json_object *v = NULL;
    if (ujson_parse((const char *)data, size, 4096, 16, &v, err, sizeof err) == 0 && v) {
        struct strbuf a = { 0 }, b = { 0 };
        struct json_object *w = NULL;
        ujson_append(&a, v, UJSON_PLAIN);
        check_text(&a);
        if (ujson_parse(a.p, a.len, 1 << 20, 17, &w, err, sizeof err) < 0)
            abort();
        ujson_append(&b, w, UJSON_PLAIN);
        if (a.len != b.len || memcmp(a.p, b.p, a.len))
            abort();
        json_object_put(w);
        sb_free(&a);
        sb_free(&b);
    }
    json_object_put(v);

    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    size_t n;
    char *want = ujson_utf8_clean(s, strlen(s), &n);
    struct json_object *o = json_object_new_array(), *back = NULL;
    struct strbuf t = { 0 };
    if (want && o && ujson_push_str(o, s) == 0 && ujson_append(&t, o, UJSON_PLAIN) == 0) {
        check_text(&t);
        if (ujson_parse(t.p, t.len, 1 << 20, 4, &back, err, sizeof err) < 0)
            abort();
        const char *got = json_object_get_string(json_object_array_get_idx(back, 0));
        if (!got || strcmp(got, want))
            abort();
    }
    json_object_put(back);
    json_object_put(o);
    sb_free(&t);
    free(want);
    free(s);
    return 0;
}
