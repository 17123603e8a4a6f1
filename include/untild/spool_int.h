/* spool_int.h - what the files of the spool share, and nothing else
 * includes: spool.c (files, fsync, recovery, the id map) and
 * spool_format.c (the header's text form). Any thread: pure functions. */
#ifndef UNTILD_SPOOL_INT_H
#define UNTILD_SPOOL_INT_H

#include <stddef.h>
#include <string.h>
#include "untild/spool.h"

#define SPOOL_MAGIC "untild-spool 1\n"

struct buf {
    char *p;
    size_t len, cap;
};

static inline int id_valid(const char *id)
{
    size_t n = 0;
    if (id == NULL || id[0] == '\0')
        return 0;
    for (; id[n] != '\0'; n++) {
        if (n >= SPOOL_ID_MAX - 1)
            return 0;
        if (!((id[n] >= '0' && id[n] <= '9') || (id[n] >= 'a' && id[n] <= 'z')))
            return 0;
    }
    return 1;
}

/* spool_format.c: the header of m appended to b (SPOOL_MAGIC first); 0 or
 * -1 (ENOMEM). */
int spool_encode_header(struct buf *b, const struct spool_meta *m);
/* spool_format.c: h (NUL-terminated, modified in place) into m; 0, or -1
 * with errno EINVAL for a header that is not ours or malformed. */
int spool_parse_header(char *h, struct spool_meta *m);

#endif
