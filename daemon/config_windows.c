/* config_windows.c - the window files of [windows] files = GLOB into an
 * index: every line parsed (window_parse.c), cadence lines collected,
 * every error as FILE:LINE. Part of the config module (config.h). */
#include "untild/config.h"

#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "untild/cadence.h"
#include "untild/when.h"
#include "untild/windows.h"

#define WINDOW_LINE_MAX (64 * 1024)     /* window-file lines */

/* ---- window files ----------------------------------------------------------------- */

/* One window file into ix. Returns 0, or -1 on ENOMEM (ix unusable). */
static int load_window_file(const struct config *c, const char *path,
                            time_t now, struct windows *ix,
                            struct config_errors *e)
{
    const char *file = path;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        config_errors_add(e, path, 0, "cannot open: %s", strerror(errno));
        return 0;
    }
    char *buf = NULL, err[512];
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, rc = 0;
    struct when_cache zc;   /* one zone lookup per file, not per line */
    memset(&zc, 0, sizeof zc);
    const char *tz = c->timezone ? c->timezone : "UTC";
    const char *delims = c->subaddress_delimiter ? c->subaddress_delimiter
                                                 : "+";
    /* this config's limits: a reload parses before they are in force */
    const struct window_limits lim = { c->rrule_max_iterations,
                                       c->rrule_max_duration };
    errno = 0;
    while ((len = getline(&buf, &cap, f)) >= 0) {
        lineno++;
        if (len > WINDOW_LINE_MAX) {
            config_errors_add(e, file, lineno, "line too long (max %d bytes)",
                              WINDOW_LINE_MAX);
            continue;
        }
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
            buf[--len] = '\0';
        if (memchr(buf, '\0', (size_t)len) != NULL) {
            config_errors_add(e, file, lineno, "NUL byte in line");
            continue;
        }
        if (cadence_is_line(buf)) {     /* a cadence override (issue 12) */
            err[0] = '\0';
            if (c->cadence_ovr &&
                cadence_override_parse(buf, delims, c->cadence_ovr, err, sizeof err) < 0)
                config_errors_add(e, file, lineno, "%s", err[0] ? err : "bad cadence line");
            continue;
        }
        struct window w;
        memset(&w, 0, sizeof w);
        err[0] = '\0';
        int r = window_parse_line_ex(&zc, &lim, buf, tz, delims, now, &w, err,
                                     sizeof err);
        if (r == 1)
            continue;
        if (r != 0) {
            config_errors_add(e, file, lineno, "%s",
                              err[0] ? err : "bad window line");
            continue;
        }
        w.source = WSRC_FILE;
        w.file = file;   /* windows_add interns its own copy */
        w.line = lineno;
        if (w.created == 0)
            w.created = now;
        const struct window *added = windows_add(ix, &w);
        window_free_fields(&w);
        if (added == NULL) {
            rc = -1;
            break;
        }
        errno = 0;
    }
    if (rc == 0 && ferror(f))
        config_errors_add(e, file, 0, "read error: %s", strerror(errno));
    free(buf);
    fclose(f);
    return rc;
}

struct windows *config_load_windows(const struct config *c, time_t now,
                                    struct config_errors *e)
{
    struct windows *ix = windows_new();
    if (c && c->cadence_ovr)
        cadence_overrides_clear(c->cadence_ovr);
    if (ix == NULL || c == NULL || c->window_files == NULL)
        return ix;
    glob_t g;
    int r = glob(c->window_files, 0, NULL, &g);
    if (r == GLOB_NOMATCH)
        return ix;
    if (r == GLOB_NOSPACE) {
        globfree(&g);
        windows_free(ix);
        return NULL;
    }
    if (r != 0) {
        config_errors_add(e, c->window_files, 0, "cannot read window files");
        globfree(&g);
        return ix;
    }
    for (size_t i = 0; i < g.gl_pathc; i++) {
        if (load_window_file(c, g.gl_pathv[i], now, ix, e) != 0) {
            globfree(&g);
            windows_free(ix);
            return NULL;
        }
    }
    globfree(&g);
    return ix;
}
