/* strbuf.h - a growable byte buffer for building replies and messages. */
#ifndef UNTILD_STRBUF_H
#define UNTILD_STRBUF_H

#include <stddef.h>
#include <string.h>

struct strbuf {
    char *p;        /* always NUL-terminated when non-NULL */
    size_t len, cap;
    int oom;        /* an allocation failed: contents are incomplete */
};

void sb_add(struct strbuf *b, const void *data, size_t n);
void sb_puts(struct strbuf *b, const char *s);
void sb_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Take ownership of the contents (never NULL unless oom); b is reset. */
char *sb_take(struct strbuf *b, size_t *len);
void sb_free(struct strbuf *b);

/* Two optional strings alike: NULL is like only NULL. */
static inline int str_same(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

#endif
