/* untilctl.c - the control client: sends its arguments to untild's
 * control socket and prints the answer. Exit status: the daemon's (0 ok,
 * 3 quiet for `check`), or 1 if the daemon cannot be reached, 2 for usage.
 *
 * The socket: -s PATH, else $UNTILD_CONTROL_SOCKET, else the
 * control_socket of -c CONFIG, else /run/untild/control.sock. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "untild/config.h"
#include "untild/csv_import.h"
#include "untild/onboard.h"
#include "untild/sysutil.h"
#include "untild/verbs.h"

#ifndef UNTILD_VERSION
#define UNTILD_VERSION "unknown"   /* the Makefile passes VERSION */
#endif

static void usage(FILE *f)
{
    char verbs[4096];
    verbs_usage(verbs, sizeof verbs);
    fprintf(f,
        "usage: untilctl [-s SOCKET | -c CONFIG] [--json] COMMAND ...\n"
        "  -s SOCKET    talk to untild's control socket SOCKET\n"
        "  -c CONFIG    use CONFIG's control_socket (default: $UNTILD_CONTROL_SOCKET,\n"
        "               $XDG_RUNTIME_DIR/untild/control.sock, /run/untild/control.sock)\n"
        "  --json       print JSON instead of tables (anywhere after the command too)\n"
        "  -h, --help   print this help and exit\n"
        "  --version    print the version and exit\n"
        "commands (untilctl(1) describes each one and its options):\n%s", verbs);
}

/* Print the daemon's text. It cleans what it sends, but this is the last
 * step before a terminal: C0 controls other than newline and tab, DEL and
 * the UTF-8 forms of the C1 controls (U+0080..U+009F: 0xC2 0x80..0x9F,
 * CSI among them) become '?'. */
static void print_clean(FILE *f, char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
            p[i] = '?';
        else if (c == 0xc2 && i + 1 < n && (unsigned char)p[i + 1] >= 0x80 &&
                 (unsigned char)p[i + 1] <= 0x9f)
            p[i] = p[i + 1] = '?';
    }
    fwrite(p, 1, n, f);
}

/* The next page's command: these words, with --after set to the cursor. */
static void print_next(int argc, char **argv, const char *next)
{
    fputs("untilctl: more entries; next page: untilctl", stderr);
    for (int k = 0; k < argc; k++) {
        if (!strcmp(argv[k], "--after") && k + 1 < argc) {
            k++;
            continue;
        }
        fprintf(stderr, " %s", argv[k]);
    }
    fprintf(stderr, " --after %s\n", next);
}

/* untilctl onboard REP ...: local work on the config, no daemon needed. */
static int onboard(int argc, char **argv, int i, const char *conf)
{
    const char *host = NULL, *outdir = ".";
    if (i + 1 >= argc || argv[i + 1][0] == '-') {
        usage(stderr);
        return 2;
    }
    for (int k = i + 2; k + 1 < argc; k++) {
        if (!strcmp(argv[k], "--host"))
            host = argv[++k];
        else if (!strcmp(argv[k], "--out"))
            outdir = argv[++k];
    }
    struct config_errors e = { 0 };
    struct config *cfg = config_load(conf ? conf : "/etc/untild/untild.conf", &e);
    for (size_t k = 0; k < e.n; k++)
        fprintf(stderr, "%s\n", e.lines[k]);
    config_errors_free(&e);
    if (!cfg)
        return 1;
    char *summary = NULL;
    int rc = onboard_write(cfg, argv[i + 1], host, outdir, &summary);
    if (rc < 0)
        fprintf(stderr, "untilctl onboard: %s\n", strerror(errno));
    else
        fputs(summary ? summary : "", stdout);
    free(summary);
    config_free(cfg);
    return rc < 0 ? 1 : 0;
}

/* untilctl window import FILE|-: the file is read here (the daemon may not
 * be able to open the caller's files) and sent as one word. Returns the
 * contents (malloc'd), or NULL after saying why. */
static char *import_file(const char *path)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "re") : stdin;
    if (!f) {
        fprintf(stderr, "untilctl window import: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(CSV_MAX_BYTES + 2);
    size_t n = buf ? fread(buf, 1, CSV_MAX_BYTES + 1, f) : 0;
    int err = ferror(f);
    if (f != stdin)
        fclose(f);
    if (!buf || err) {
        fprintf(stderr, "untilctl window import: %s: %s\n", path, buf ? "read error" : "out of memory");
        free(buf);
        return NULL;
    }
    if (n > CSV_MAX_BYTES) {
        fprintf(stderr, "untilctl window import: %s is over %u bytes (the import's limit): split it\n", path,
                CSV_MAX_BYTES);
        free(buf);
        return NULL;
    }
    if (memchr(buf, '\0', n)) {
        fprintf(stderr, "untilctl window import: %s contains a NUL byte: not a CSV file\n", path);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* The index of FILE in "window import FILE" (--json may be anywhere among
 * the words), or -1. */
static int import_arg(int argc, char **argv, int i)
{
    int wi[3], nw = 0;
    for (int k = i; k < argc && nw < 3; k++)
        if (strcmp(argv[k], "--json"))
            wi[nw++] = k;
    if (nw == 3 && !strcmp(argv[wi[0]], "window") && !strcmp(argv[wi[1]], "import") &&
        (argv[wi[2]][0] != '-' || !strcmp(argv[wi[2]], "-")))
        return wi[2];
    return -1;
}

/* Everything the daemon sends until it closes, in *out (*len 0 if nothing
 * came). Returns 0, or -1 with errno ENOMEM. */
static int read_answer(int fd, char **out, size_t *len)
{
    char *buf = NULL;
    size_t have = 0, cap = 0;
    for (;;) {
        if (have + 65536 > cap) {
            char *nb = realloc(buf, cap = cap ? cap * 2 : 131072);
            if (!nb) {
                free(buf);
                errno = ENOMEM;
                return -1;
            }
            buf = nb;
        }
        ssize_t r = read(fd, buf + have, cap - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        have += (size_t)r;
    }
    *out = buf;
    *len = have;
    return 0;
}

int main(int argc, char **argv)
{
    const char *sock = getenv("UNTILD_CONTROL_SOCKET"), *conf = NULL;
    struct config *cfg = NULL;
    int i = 1;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "-s") && i + 1 < argc)
            sock = argv[++i];
        else if (!strcmp(argv[i], "-c") && i + 1 < argc)
            conf = argv[++i];
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--version")) {
            printf("untilctl %s\n", UNTILD_VERSION);
            return 0;
        } else
            break;
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    /* onboard is local work on the config: no daemon needed. */
    if (!strcmp(argv[i], "onboard"))
        return onboard(argc, argv, i, conf);
    if (!sock && conf) {
        struct config_errors e = { 0 };
        cfg = config_load(conf, &e);
        if (!cfg) {
            for (size_t k = 0; k < e.n; k++)
                fprintf(stderr, "%s\n", e.lines[k]);
            config_errors_free(&e);
            return 1;
        }
        config_errors_free(&e);
        sock = cfg->control_socket;
    }
    /* A personal instance (systemctl --user) listens in the user's
     * runtime directory; the system one in /run/untild. */
    char usersock[512];
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (!sock && xdg && *xdg == '/') {
        snprintf(usersock, sizeof usersock, "%s/untild/control.sock", xdg);
        if (access(usersock, F_OK) == 0)
            sock = usersock;
    }
    if (!sock)
        sock = "/run/untild/control.sock";

    char *csv = NULL;
    int csv_arg = import_arg(argc, argv, i);
    if (csv_arg >= 0 && !(csv = import_file(argv[csv_arg]))) {
        config_free(cfg);
        return 1;
    }

    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(sock) >= sizeof sa.sun_path) {
        fprintf(stderr, "untilctl: socket path too long: %s\n", sock);
        free(csv);
        config_free(cfg);
        return 1;
    }
    strcpy(sa.sun_path, sock);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        fprintf(stderr, "untilctl: cannot reach untild at %s: %s (is the daemon running?)\n",
                sock, strerror(errno));
        free(csv);
        config_free(cfg);
        return 1;
    }
    for (int k = i; k < argc; k++) {
        const char *word = k == csv_arg ? csv : argv[k];
        if (sysutil_write_all(fd, word, strlen(word) + 1) < 0)
            goto broken;
    }
    free(csv);
    csv = NULL;
    if (sysutil_write_all(fd, "", 1) < 0)
        goto broken;

    /* The whole answer, then print: the daemon bounds its size
     * (control_output_max), and cleaning needs whole characters. */
    char *buf = NULL;
    size_t have = 0;
    if (read_answer(fd, &buf, &have) < 0)
        goto broken;
    int status = -1;
    char *nl = buf ? memchr(buf, '\n', have) : NULL;
    if (nl) {
        *nl = '\0';
        status = atoi(buf);
        const char *next = strstr(buf, " next=");
        size_t skip = (size_t)(nl - buf) + 1;
        print_clean(status == 0 || status == 3 ? stdout : stderr, buf + skip, have - skip);
        fflush(stdout);
        if (next && next[6] && strspn(next + 6, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                      "0123456789._-") == strlen(next + 6))
            print_next(argc - i, argv + i, next + 6);
    }
    free(buf);
    close(fd);
    config_free(cfg);
    if (status < 0) {
        fprintf(stderr, "untilctl: no answer from untild at %s\n", sock);
        return 1;
    }
    return status;
broken:
    fprintf(stderr, "untilctl: connection to %s broke: %s\n", sock, strerror(errno));
    free(csv);
    close(fd);
    config_free(cfg);
    return 1;
}
