/* csv_import.h - the CSV that CRMs export for windows (docs/DESIGN.md:
 * email,until,reason[,action]) as rows, each with its line number, or as
 * errors that name the line, the field and the reason. RFC 4180 fields:
 * quoted fields may hold commas, line breaks and "" for a quote; CRLF or
 * LF line ends; an optional header line (first field "email"); blank lines
 * and a UTF-8 byte order mark are skipped. Pure: no daemon state, any
 * thread. What a row means (an address, a date) is for the caller. */
#ifndef UNTILD_CSV_IMPORT_H
#define UNTILD_CSV_IMPORT_H

#include <stddef.h>

/* Bounds (untilctl(1), docs/openapi.yaml): a file over CSV_MAX_BYTES or
 * with more than CSV_MAX_ROWS rows is refused whole; a field over
 * CSV_FIELD_MAX bytes is an error of its line. At most CSV_MAX_ERRORS
 * errors are kept (nerrs_total counts them all). */
#define CSV_MAX_BYTES (256u * 1024u)
#define CSV_MAX_ROWS 1000
#define CSV_FIELD_MAX 1024
#define CSV_MAX_ERRORS 100

struct csv_row {
    int line;               /* 1-based line where the record starts */
    char *email, *until, *reason, *action;   /* trimmed; reason, action NULL if empty/absent */
};

struct csv_error {
    int line;               /* 0: the file as a whole */
    char field[16];         /* "email", "until", "reason", "action", "" */
    char reason[200];
};

struct csv_import {
    struct csv_row *rows;
    size_t nrows;
    struct csv_error errs[CSV_MAX_ERRORS];
    size_t nerrs, nerrs_total;
    int header;             /* 1 if the first line was a header */
};

/* Parse text[0..len) into *out (zeroed first). Returns 0 when parsed (out
 * may still hold line errors), -1 with errno ENOMEM. A file over the
 * bounds gives one error with line 0 and no rows. Free with
 * csv_import_free. */
int csv_import_parse(const char *text, size_t len, struct csv_import *out);

/* Record an error (kept if there is room; counted anyway). */
void csv_import_error(struct csv_import *c, int line, const char *field, const char *reason);

void csv_import_free(struct csv_import *c);

#endif
