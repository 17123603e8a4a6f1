/* fuzz_message.c - libFuzzer target for the MIME walk and iMIP facts
 * (message_parse) and header lookup (message_header). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "untild/message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy without a terminating NUL, so reads past len show up. */
    char *msg = malloc(size ? size : 1);
    struct message_facts f;
    char *h;
    if (!msg)
        return 0;
    memcpy(msg, data, size);
    memset(&f, 0, sizeof f);
    if (message_parse(msg, size, "+", &f) == 0) {
        if (f.nattendees > MSG_MAX_ATTENDEES || f.header_len > size)
            abort();
        message_facts_free(&f);
    }
    if ((h = message_header(msg, size, "Subject")))
        free(h);
    if ((h = message_header(msg, size, "content-type")))
        free(h);
    free(msg);
    return 0;
}
