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
#include "untild/onboard.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: untilctl [-s SOCKET | -c CONFIG] [--json] COMMAND ...\n"
        "  window add WHO --until WHEN [--from WHEN] [--reason TEXT] [--action hold|flag|reject]\n"
        "                 [--rrule RULE] [--tz ZONE] [--duration DUR]\n"
        "  window list\n"
        "  window end WHO|ID\n"
        "  check WHO [--at WHEN] [--from REP]     exit 0 allow, 3 quiet\n"
        "  held list | held show ID | held release ID [--reason TEXT] | held discard ID\n"
        "  report [--since DAYS]\n"
        "  followups [--days N]                  follow-ups due (default 7 days)\n"
        "  cadence list | cadence set WHO KEY=VALUE... | cadence clear WHO\n"
        "  status | reload\n"
        "  onboard REP [--host HOST] [--out DIR]   (reads -c CONFIG; writes client settings)\n");
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
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
        } else
            break;
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    /* onboard is local work on the config: no daemon needed. */
    if (!strcmp(argv[i], "onboard")) {
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
        cfg = config_load(conf ? conf : "/etc/untild/untild.conf", &e);
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

    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(sock) >= sizeof sa.sun_path) {
        fprintf(stderr, "untilctl: socket path too long: %s\n", sock);
        return 1;
    }
    strcpy(sa.sun_path, sock);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        fprintf(stderr, "untilctl: cannot reach untild at %s: %s (is the daemon running?)\n",
                sock, strerror(errno));
        config_free(cfg);
        return 1;
    }
    for (int k = i; k < argc; k++)
        if (write_all(fd, argv[k], strlen(argv[k]) + 1) < 0)
            goto broken;
    if (write_all(fd, "", 1) < 0)
        goto broken;

    char buf[65536];
    size_t have = 0;
    int status = -1;
    for (;;) {
        ssize_t r = read(fd, buf + have, sizeof buf - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        have += (size_t)r;
        if (status < 0) {
            char *nl = memchr(buf, '\n', have);
            if (!nl) {
                if (have == sizeof buf)
                    goto broken;
                continue;
            }
            status = atoi(buf);
            size_t skip = (size_t)(nl - buf) + 1;
            memmove(buf, buf + skip, have - skip);
            have -= skip;
        }
        FILE *out = status == 0 || status == 3 ? stdout : stderr;
        fwrite(buf, 1, have, out);
        have = 0;
    }
    close(fd);
    config_free(cfg);
    if (status < 0) {
        fprintf(stderr, "untilctl: no answer from untild at %s\n", sock);
        return 1;
    }
    return status;
broken:
    fprintf(stderr, "untilctl: connection to %s broke: %s\n", sock, strerror(errno));
    close(fd);
    config_free(cfg);
    return 1;
}
