/* secret.c - passwords from a file or a command. The file name or the
 * command's exit status may be logged; the secret never is, and every
 * buffer that held it is wiped. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "untild/secret.h"
#include "untild/log.h"

static char *first_line_dup(char *buf)
{
    buf[strcspn(buf, "\r\n")] = '\0';
    char *s = strdup(buf);
    explicit_bzero(buf, strlen(buf));
    return s;
}

static char *from_file(const char *path, const char *who)
{
    char buf[SECRET_MAX + 1];
    FILE *f = fopen(path, "re");
    if (!f) {
        log_error("%s: cannot open password file %s: %s", who, path, strerror(errno));
        return NULL;
    }
    size_t n = fread(buf, 1, SECRET_MAX, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        explicit_bzero(buf, sizeof buf);
        log_error("%s: cannot read password file %s", who, path);
        return NULL;
    }
    buf[n] = '\0';
    return first_line_dup(buf);
}

static char *from_command(const char *cmd, const char *who)
{
    char buf[SECRET_MAX + 1];
    size_t n = 0;
    FILE *p = popen(cmd, "re");
    if (!p) {
        log_error("%s: cannot run password_command: %s", who, strerror(errno));
        return NULL;
    }
    while (n < SECRET_MAX) {
        size_t k = fread(buf + n, 1, SECRET_MAX - n, p);
        if (k == 0)
            break;
        n += k;
    }
    /* drain the rest so the command does not die of SIGPIPE */
    char sink[256];
    while (fread(sink, 1, sizeof sink, p) > 0)
        ;
    int st = pclose(p);
    buf[n] = '\0';
    if (st != 0) {
        explicit_bzero(buf, sizeof buf);
        log_error("%s: password_command failed (status %d)", who, st);
        return NULL;
    }
    return first_line_dup(buf);
}

char *secret_load(const char *file, const char *command, const char *who)
{
    if (file)
        return from_file(file, who);
    if (command)
        return from_command(command, who);
    log_error("%s: no password_file or password_command", who);
    return NULL;
}

char *secret_load_optional(const char *file, const char *command, const char *who, int *failed)
{
    *failed = 0;
    if (!file && !command)
        return NULL;
    char *s = secret_load(file, command, who);
    *failed = s == NULL;
    return s;
}

void secret_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}
