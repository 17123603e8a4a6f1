/* csv_import.c - CRM CSV exports (email,until,reason[,action]) as rows
 * with line numbers (csv_import.h). One pass over the bytes, a record at a
 * time, into fixed field buffers: the input is bounded (CSV_MAX_BYTES)
 * and so is every field (CSV_FIELD_MAX). A bad record is an error of its
 * line and the scan goes on at the next record, so one import reports
 * every bad line at once. Strict RFC 4180 where it helps the user: a
 * quote inside an unquoted field or text after a closing quote is an
 * error (a CRM that quotes wrongly should be told, not half-parsed).
 *
 * Thread: any (pure). Diagnostics: returned in struct csv_import. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "untild/csv_import.h"

#define NF 4

static const char *const NAMES[NF] = { "email", "until", "reason", "action" };

struct rec {
    int line;               /* where it starts */
    int nf;                 /* fields seen (may exceed NF) */
    int quoted0;            /* the first field was quoted (a quoted "" is not blank) */
    char f[NF][CSV_FIELD_MAX + 1];
    size_t fl[NF];
    int bad;                /* an error below */
    char field[16], reason[200];
};

void csv_import_error(struct csv_import *c, int line, const char *field, const char *reason)
{
    if (c->nerrs < CSV_MAX_ERRORS) {
        struct csv_error *e = &c->errs[c->nerrs++];
        e->line = line;
        snprintf(e->field, sizeof e->field, "%s", field ? field : "");
        snprintf(e->reason, sizeof e->reason, "%s", reason);
    }
    c->nerrs_total++;
}

static void rec_fail(struct rec *r, const char *reason)
{
    if (r->bad)
        return;     /* the first problem of a record is the one to fix */
    r->bad = 1;
    snprintf(r->field, sizeof r->field, "%s", r->nf <= NF ? NAMES[r->nf - 1] : "");
    snprintf(r->reason, sizeof r->reason, "%s", reason);
}

static void put(struct rec *r, char ch)
{
    int i = r->nf - 1;
    if (i >= NF)
        return;
    if (r->fl[i] >= CSV_FIELD_MAX) {
        char m[64];
        snprintf(m, sizeof m, "longer than %d bytes", CSV_FIELD_MAX);
        rec_fail(r, m);
        return;
    }
    r->f[i][r->fl[i]++] = ch;
}

/* The end of a line at s[i] ("\n", "\r\n" or a lone "\r"): its length, or 0. */
static size_t eol(const char *s, size_t len, size_t i)
{
    if (s[i] == '\n')
        return 1;
    if (s[i] == '\r')
        return i + 1 < len && s[i + 1] == '\n' ? 2 : 1;
    return 0;
}

/* One record from s[*pos..len) into r; *line counts the lines passed.
 * Returns 0 with a record, 1 at the end of the input. */
static int read_record(const char *s, size_t len, size_t *pos, int *line, struct rec *r)
{
    size_t i = *pos;
    if (i >= len)
        return 1;
    memset(r, 0, offsetof(struct rec, f));
    memset(r->fl, 0, sizeof r->fl);
    r->bad = 0;
    r->line = *line;
    r->nf = 1;
    int inq = 0, after_q = 0, started = 0;
    while (i < len) {
        char ch = s[i];
        size_t n = eol(s, len, i);
        if (ch == '\0') {
            rec_fail(r, "contains a NUL byte");
            i++;
        } else if (inq) {
            if (n) {
                (*line)++;
                for (size_t k = 0; k < n; k++)
                    put(r, s[i + k]);
                i += n;
            } else if (ch == '"' && i + 1 < len && s[i + 1] == '"') {
                put(r, '"');
                i += 2;
            } else if (ch == '"') {
                inq = 0;
                after_q = 1;
                i++;
            } else {
                put(r, ch);
                i++;
            }
        } else if (n) {
            (*line)++;
            i += n;
            break;
        } else if (ch == ',') {
            r->nf++;
            started = after_q = 0;
            i++;
        } else if (after_q) {
            if (ch != ' ' && ch != '\t')
                rec_fail(r, "text after a closing quote (a quote inside a quoted field is written \"\")");
            i++;
        } else if (ch == '"') {
            if (started)
                rec_fail(r, "a quote inside an unquoted field (quote the whole field, a quote as \"\")");
            else {
                inq = 1;
                if (r->nf == 1)
                    r->quoted0 = 1;
            }
            i++;
        } else {
            if (ch != ' ' && ch != '\t')
                started = 1;
            put(r, ch);
            i++;
        }
    }
    if (inq)
        rec_fail(r, "unterminated quote (the field runs to the end of the file)");
    *pos = i;
    return 0;
}

/* Trim spaces and tabs, NUL-terminate; NULL when empty. */
static char *trimmed(char *f, size_t n)
{
    f[n] = '\0';
    while (n && (f[n - 1] == ' ' || f[n - 1] == '\t'))
        f[--n] = '\0';
    f += strspn(f, " \t");
    return *f ? f : NULL;
}

static void row_free(struct csv_row *r)
{
    free(r->email);
    free(r->until);
    free(r->reason);
    free(r->action);
}

/* A parsed record as a row, or its error. Returns -1 on ENOMEM. */
static int take(struct csv_import *c, struct rec *r)
{
    char m[96];
    if (r->bad) {
        csv_import_error(c, r->line, r->field, r->reason);
        return 0;
    }
    if (r->nf < 3 || r->nf > NF) {
        snprintf(m, sizeof m, "%d field%s; expected email,until,reason[,action]", r->nf, r->nf == 1 ? "" : "s");
        csv_import_error(c, r->line, "", m);
        return 0;
    }
    char *v[NF] = { 0 };
    for (int i = 0; i < r->nf; i++)
        v[i] = trimmed(r->f[i], r->fl[i]);
    for (int i = 0; i < 2; i++)
        if (!v[i]) {
            csv_import_error(c, r->line, NAMES[i], i ? "required (a date, or never)" : "required (an address)");
            return 0;
        }
    if (c->nrows >= CSV_MAX_ROWS) {
        c->nrows++;     /* counted, not kept (rows has CSV_MAX_ROWS); the file is refused */
        return 0;
    }
    struct csv_row *row = &c->rows[c->nrows];
    memset(row, 0, sizeof *row);
    row->line = r->line;
    row->email = strdup(v[0]);
    row->until = strdup(v[1]);
    row->reason = v[2] ? strdup(v[2]) : NULL;
    row->action = v[3] ? strdup(v[3]) : NULL;
    if (!row->email || !row->until || (v[2] && !row->reason) || (v[3] && !row->action)) {
        row_free(row);
        errno = ENOMEM;
        return -1;
    }
    c->nrows++;
    return 0;
}

static int blank(const struct rec *r)
{
    if (r->nf != 1 || r->quoted0 || r->bad)
        return 0;
    return strspn(r->f[0], " \t") >= r->fl[0];
}

int csv_import_parse(const char *text, size_t len, struct csv_import *c)
{
    memset(c, 0, sizeof *c);
    char m[128];
    if (len > CSV_MAX_BYTES) {
        snprintf(m, sizeof m, "the file is %zu bytes, over the limit of %u: split it", len, CSV_MAX_BYTES);
        csv_import_error(c, 0, "", m);
        return 0;
    }
    if (!(c->rows = calloc(CSV_MAX_ROWS, sizeof *c->rows)))
        return -1;
    size_t pos = 0;
    if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
        pos = 3;    /* spreadsheets start UTF-8 CSV with a byte order mark */
    struct rec *r = malloc(sizeof *r);
    if (!r) {
        csv_import_free(c);
        errno = ENOMEM;
        return -1;
    }
    int line = 1, first = 1;
    while (read_record(text, len, &pos, &line, r) == 0) {
        r->f[0][r->fl[0] < CSV_FIELD_MAX ? r->fl[0] : CSV_FIELD_MAX] = '\0';
        if (blank(r))
            continue;
        if (first && !r->bad && r->nf >= 1) {
            first = 0;
            char h[CSV_FIELD_MAX + 1];
            memcpy(h, r->f[0], r->fl[0]);
            const char *t = trimmed(h, r->fl[0]);
            if (t && !strcasecmp(t, "email")) {
                c->header = 1;
                continue;
            }
        }
        first = 0;
        if (take(c, r) < 0) {
            free(r);
            csv_import_free(c);
            errno = ENOMEM;
            return -1;
        }
    }
    free(r);
    if (c->nrows > CSV_MAX_ROWS) {
        size_t n = c->nrows;
        c->nrows = CSV_MAX_ROWS;
        csv_import_free(c);
        c->nerrs = c->nerrs_total = 0;     /* refused whole: its lines do not matter */
        snprintf(m, sizeof m, "the file has %zu rows, over the limit of %d: split it", n, CSV_MAX_ROWS);
        csv_import_error(c, 0, "", m);
    }
    return 0;
}

void csv_import_free(struct csv_import *c)
{
    for (size_t i = 0; c->rows && i < c->nrows; i++)
        row_free(&c->rows[i]);
    free(c->rows);
    c->rows = NULL;
    c->nrows = 0;
}
