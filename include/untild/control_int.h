/* control_int.h - what the parts of the control socket share, and nothing
 * else includes: control.c (the socket, the dispatch, windows list/end,
 * check, held mail), control_win.c (window add, change, import) and
 * control_report.c (report). All on the loop thread. */
#ifndef UNTILD_CONTROL_INT_H
#define UNTILD_CONTROL_INT_H

#include <stddef.h>
#include "untild/control.h"

struct untild;
struct strbuf;
struct window;
struct json_object;

/* Exit statuses of the verbs (untilctl(1)). */
enum { EX_OK = 0, EX_ERR = 1, EX_USAGE = 2, EX_QUIET = 3, EX_DENIED = 4, EX_NOTFOUND = 5 };

/* A rep "alice" owns what rep "alice" or "alice@anything" owns. */
int control_rep_owns(const char *rep, const char *owner);
/* The value after option name in argv, or NULL. */
const char *control_opt(int argc, char **argv, const char *name);
/* s as a table cell: controls, bidi overrides and bad UTF-8 as '?'. */
void control_sb_text(struct strbuf *b, const char *s);
const char *control_clean(const char *s, char *out, size_t outsz);
/* "usage: NAME ARGS" from verbs.h's table. */
void control_verb_usage(struct strbuf *b, const char *name);
/* o as the whole answer, one line; o is freed (NULL: out of memory). */
void control_append_json(struct strbuf *b, struct json_object *o);
/* One row of `window list`'s table. */
void control_window_row(struct strbuf *b, const struct untild *u, const struct window *w);

/* control_win.c: window add, window change, window import (argv as the
 * dispatch got it: argv[0] "window"). Return an exit status. */
int control_window_add(struct untild *u, int argc, char **argv, int admin, const char *rep, int json,
                       struct strbuf *b);
int control_window_change(struct untild *u, int argc, char **argv, int admin, const char *rep, int json,
                          struct strbuf *b);
int control_window_import(struct untild *u, int argc, char **argv, int admin, const char *rep, int json,
                          struct strbuf *b);

/* control_report.c: report [--since DAYS]. */
int control_report(struct untild *u, int argc, char **argv, int admin, const char *rep, int json,
                   struct strbuf *b);

#endif
