/* http_console.h - the web console's static files (issue 14), served by
 * the HTTP API's server (http_api.c) for every path outside /api/: GET /
 * is index.html. Only files beneath [http] console_dir, named with
 * [A-Za-z0-9._-] components that do not start with a dot, of a known type,
 * at most HTTP_CONSOLE_MAX_FILE bytes; symlinks that lead out of the
 * directory are refused. Every answer carries a strict
 * Content-Security-Policy (scripts and styles from the console's own
 * files only) and X-Content-Type-Options: nosniff. */
#ifndef UNTILD_HTTP_CONSOLE_H
#define UNTILD_HTTP_CONSOLE_H

#include <stddef.h>

struct MHD_Connection;
struct http_console;

#define HTTP_CONSOLE_MAX_FILE (1u << 20)

/* The built-in console_dir: $(PREFIX)/share/untild/console (Makefile
 * CONSOLEDIR). */
const char *http_console_default_dir(void);

/* Loop thread, at start-up: the console at dir (NULL: the built-in
 * default). A directory that cannot be opened is logged and every console
 * request is answered 404; NULL only when out of memory. */
struct http_console *http_console_open(const char *dir);
void http_console_close(struct http_console *hc);

/* Connection thread: answer method url from the console's files (GET and
 * HEAD; else 405). Returns libmicrohttpd's MHD_YES / MHD_NO. */
int http_console_answer(const struct http_console *hc, struct MHD_Connection *c, const char *url,
                        const char *method);

/* Any thread. The Content-Type for a file name, or NULL if the console
 * does not serve that kind of file. */
const char *http_console_type(const char *name);

/* Any thread. 1 if rel (a URL path without its leading '/') names a file
 * the console may serve: at most 255 bytes of [A-Za-z0-9._-] components
 * joined by single '/', none empty or starting with '.'. */
int http_console_name_ok(const char *rel);

#endif
