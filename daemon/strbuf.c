/* strbuf.c - growable buffer; an allocation failure is remembered (oom)
 * instead of reported at every call, and checked once by the user. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "untild/strbuf.h"

static int grow(struct strbuf *b, size_t need)
{
    if (b->oom)
        return -1;
    if (b->len + need + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + need + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void sb_add(struct strbuf *b, const void *data, size_t n)
{
    if (grow(b, n) < 0)
        return;
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void sb_puts(struct strbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

void sb_printf(struct strbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || grow(b, (size_t)n) < 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *sb_take(struct strbuf *b, size_t *len)
{
    if (!b->p && !b->oom)
        grow(b, 0);
    char *p = b->p;
    if (len)
        *len = b->len;
    if (b->oom) {
        free(p);
        p = NULL;
    }
    memset(b, 0, sizeof *b);
    return p;
}

void sb_free(struct strbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}
