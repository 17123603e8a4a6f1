/* http_console.c - the web console's static files (see http_console.h).
 *
 * Thread: http_console_answer runs on libmicrohttpd's connection threads
 * (the HTTP API's server is thread-per-connection), so opening and reading
 * a file never touches the loop; open and close run on the loop thread at
 * start and stop. The directory is opened once; a file is opened beneath
 * it with openat2(RESOLVE_BENEATH), so neither "..", an absolute path nor
 * a symlink can lead out of it (on a kernel without openat2: realpath and
 * a prefix check, then O_NOFOLLOW). Names are checked before that anyway:
 * plain components only, no dot files, a known extension.
 *
 * Diagnostics: "console: DIR: ..." at start when the directory cannot be
 * opened; "console: NAME is over N bytes, not served" when a file is too
 * big. A missing file is an ordinary 404, not logged. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/openat2.h>
#include <microhttpd.h>
#include "untild/http_console.h"
#include "untild/log.h"

#ifndef UNTILD_CONSOLE_DIR
#define UNTILD_CONSOLE_DIR "/usr/local/share/untild/console"
#endif

/* scripts and styles from our own files only (no inline script, no eval),
 * API calls to ourselves, never framed */
#define CSP "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " \
            "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

struct http_console {
    int dirfd;                  /* -1: not there; every request 404 */
    char dir[PATH_MAX];         /* realpath, for the fallback's prefix check */
};

const char *http_console_default_dir(void)
{
    return UNTILD_CONSOLE_DIR;
}

struct http_console *http_console_open(const char *dir)
{
    struct http_console *hc = calloc(1, sizeof *hc);
    if (!hc)
        return NULL;
    hc->dirfd = -1;
    if (!dir)
        dir = UNTILD_CONSOLE_DIR;
    if (!realpath(dir, hc->dir) || (hc->dirfd = open(hc->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        log_warn("console: %s: %s: GET / answers 404 (set [http] console_dir; in the source tree: "
                 "daemon/console)", dir, strerror(errno));
    return hc;
}

void http_console_close(struct http_console *hc)
{
    if (!hc)
        return;
    if (hc->dirfd >= 0)
        close(hc->dirfd);
    free(hc);
}

const char *http_console_type(const char *name)
{
    static const char *const types[][2] = {
        { ".html", "text/html; charset=utf-8" },
        { ".css", "text/css; charset=utf-8" },
        { ".js", "text/javascript; charset=utf-8" },
        { ".svg", "image/svg+xml" },
        { ".png", "image/png" },
        { ".ico", "image/x-icon" },
        { ".txt", "text/plain; charset=utf-8" },
        { ".json", "application/json" },
        { ".woff2", "font/woff2" },
    };
    const char *dot = strrchr(name, '.');
    if (!dot || strchr(dot, '/'))
        return NULL;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(dot, types[i][0]))
            return types[i][1];
    return NULL;
}

int http_console_name_ok(const char *rel)
{
    size_t n = strlen(rel);
    if (n == 0 || n > 255)
        return 0;
    for (const char *p = rel; *p; p++) {
        int start = p == rel || p[-1] == '/';
        if (start && (*p == '.' || *p == '/'))   /* "", ".x", "..", "." */
            return 0;
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/", *p))
            return 0;
    }
    return rel[n - 1] != '/';
}

/* rel opened beneath the console's directory, or -1. */
static int open_beneath(const struct http_console *hc, const char *rel)
{
    struct open_how how = { .flags = O_RDONLY | O_CLOEXEC | O_NOCTTY,
                            .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };
    long fd = syscall(SYS_openat2, hc->dirfd, rel, &how, sizeof how);
    if (fd >= 0 || errno != ENOSYS)
        return (int)fd;
    /* no openat2 (Linux < 5.6): resolve, check the prefix, open the
     * resolved path without following a last-moment symlink */
    char full[PATH_MAX], real[PATH_MAX];
    size_t dl = strlen(hc->dir);
    if ((size_t)snprintf(full, sizeof full, "%s/%s", hc->dir, rel) >= sizeof full || !realpath(full, real))
        return -1;
    if (strncmp(real, hc->dir, dl) || real[dl] != '/') {
        errno = EXDEV;
        return -1;
    }
    return open(real, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
}

static void secure_headers(struct MHD_Response *r, const char *type)
{
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy", CSP);
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
}

static int send_text(struct MHD_Connection *c, unsigned status, const char *text, const char *allow)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    secure_headers(r, "text/plain; charset=utf-8");
    if (allow)
        MHD_add_response_header(r, "Allow", allow);
    int rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

int http_console_answer(const struct http_console *hc, struct MHD_Connection *c, const char *url,
                        const char *method)
{
    char rel[300];
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return send_text(c, 405, "method not allowed\n", "GET, HEAD");
    if (url[0] != '/' || strlen(url) >= sizeof rel - 16)
        return send_text(c, 404, "not found\n", NULL);
    snprintf(rel, sizeof rel, "%s%s", url + 1, url[1] == '\0' ? "index.html" : "");
    const char *type = http_console_type(rel);
    if (!type || !http_console_name_ok(rel) || hc->dirfd < 0)
        return send_text(c, 404, "not found\n", NULL);
    int fd = open_beneath(hc, rel);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        else if (errno == EXDEV || errno == ELOOP)
            log_warn("console: %s leads out of %s, not served", rel, hc->dir);
        return send_text(c, 404, "not found\n", NULL);
    }
    if ((unsigned long long)st.st_size > HTTP_CONSOLE_MAX_FILE) {
        log_warn("console: %s is over %u bytes, not served", rel, HTTP_CONSOLE_MAX_FILE);
        close(fd);
        return send_text(c, 404, "not found\n", NULL);
    }
    struct MHD_Response *r = MHD_create_response_from_fd64((uint64_t)st.st_size, fd);   /* owns fd */
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    secure_headers(r, type);
    int rc = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}
