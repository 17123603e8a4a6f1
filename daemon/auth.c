/* auth.c - passwd-file authentication with crypt(3) (libcrypt: yescrypt,
 * sha512-crypt, bcrypt...). The file is re-read at every check so a new
 * rep can be added without a reload; it is small. */
#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "untild/auth.h"
#include "untild/log.h"

int auth_passwd_check(const char *file, const char *user, const char *pass)
{
    FILE *fp;
    char line[1024];
    int verdict = 0;

    if (!file || !user || !pass)
        return 0;
    if (!(fp = fopen(file, "re"))) {
        log_error("auth: cannot open %s: %s", file, strerror(errno));
        return -1;
    }
    size_t ulen = strlen(user);
    while (fgets(line, sizeof line, fp)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#' || strncmp(line, user, ulen) || line[ulen] != ':')
            continue;
        char *hash = line + ulen + 1;
        char *end = strchr(hash, ':');
        if (end)
            *end = '\0';
        struct crypt_data *cd = calloc(1, sizeof *cd);
        if (!cd)
            break;
        const char *out = crypt_r(pass, hash, cd);
        verdict = out && out[0] != '*' && strlen(out) == strlen(hash) && !strcmp(out, hash);
        explicit_bzero(cd, sizeof *cd);
        free(cd);
        break;
    }
    explicit_bzero(line, sizeof line);
    fclose(fp);
    return verdict;
}
