/* ical_raw.h - iCalendar content lines as the client sent them (see
 * daemon/ical_raw.c). Pure functions: no libical, no I/O. */
#ifndef UNTILD_ICAL_RAW_H
#define UNTILD_ICAL_RAW_H

#include <stddef.h>

struct strbuf;

#define ICR_MAX_PARAMS 32

/* One logical (unfolded) content line: bytes [off, off+len) of the text,
 * folds and the line ending included; eol is the ending's length (0, 1
 * for LF, 2 for CRLF). */
struct icr_line {
    size_t off, len, eol;
};

/* The next logical line from *pos (advanced). Returns 1, or 0 at the end. */
int icr_next(const char *s, size_t n, size_t *pos, struct icr_line *l);

/* The line's content unfolded (no line ending) into out (reset first). */
void icr_unfold(const char *s, const struct icr_line *l, struct strbuf *out);

/* A parsed content line; pointers into the unfolded text. A parameter's
 * val is its raw text (quotes and commas included). */
struct icr_param {
    const char *name, *val;
    size_t nlen, vlen;
};
struct icr_prop {
    const char *name, *value;
    size_t nlen, vlen;
    size_t nparams;
    struct icr_param p[ICR_MAX_PARAMS];
};

/* Parse "NAME;P=V;Q="x:y",z:value". Returns 0, or -1 when the line is not
 * a content line (no colon, bad name, unterminated quote, too many
 * parameters). */
int icr_parse(const char *u, size_t n, struct icr_prop *out);

/* Property or parameter name equals name (ASCII, case-insensitive)? */
int icr_name_is(const char *s, size_t n, const char *name);

/* The first value of parameter name, unquoted, into buf. Returns its
 * length, or -1 if absent or too long. */
int icr_param_first(const struct icr_prop *p, const char *name, char *buf, size_t bufsz);

/* Append the property again with every parameter named in drop (NULL
 * terminated) left out and, if add is not NULL, add (e.g.
 * "SCHEDULE-AGENT=CLIENT") as its first parameter; folded at 75 octets
 * (never inside a UTF-8 sequence) with eol after each physical line.
 * Every other byte of the name, parameters and value is kept. */
void icr_rewrite(const struct icr_prop *p, const char *const *drop, const char *add,
                 const char *eol, struct strbuf *out);

/* The text as an iMIP body: METHOD:REQUEST (any METHOD replaced), the
 * SCHEDULE-AGENT and SCHEDULE-STATUS parameters dropped from ATTENDEE and
 * ORGANIZER, every line ending CRLF, everything else as it was. */
void icr_imip_request(const char *s, size_t n, struct strbuf *out);

#endif
