/* log.c - one line per event to stderr: "<level>: message".
 *
 * journald (and systemd's stderr capture) reads the "<N>" syslog prefix
 * when SYSLOG_LEVEL_PREFIX is on, so each line starts with one; a terminal
 * user sees the level word as well. The minimum level is the only state:
 * set once at start-up (-v), read by every thread. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include "untild/log.h"

static volatile enum log_level min_level = ULOG_INFO;

void log_set_level(enum log_level min) { min_level = min; }
enum log_level log_get_level(void) { return min_level; }

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    static const char *const names[] = { "debug", "info", "warning", "error", "fatal" };
    static const char prio[] = { '7', '6', '4', '3', '2' };
    char line[2048];
    int saved = errno;
    size_t n;
    va_list ap;

    if (lvl < min_level)
        return;
    n = (size_t)snprintf(line, sizeof line, "<%c>untild: %s: ", prio[lvl], names[lvl]);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - n, fmt, ap);
    va_end(ap);
    n = strlen(line);
    /* One write per line so lines from several threads never interleave;
     * control characters from the network must not forge log lines. */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
            line[i] = '?';
    if (n >= sizeof line - 1)
        n = sizeof line - 2;
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, n) < 0) {
        /* nowhere left to report it */
    }
    errno = saved;
}
