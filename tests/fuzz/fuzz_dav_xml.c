/* fuzz_dav_xml.c - libFuzzer target for WebDAV multistatus bodies
 * (dav_xml_parse): arbitrary bytes as an answer; a parsed answer's strings
 * are non-empty and trimmed, and everything is freed. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "untild/dav_xml.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    dav_xml_init();
    return 0;
}

static void check(const char *s)
{
    if (s && (!*s || isspace((unsigned char)s[0]) || isspace((unsigned char)s[strlen(s) - 1])))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dav_multistatus ms;
    char err[256];
    if (dav_xml_parse((const char *)data, size, &ms, err, sizeof err) < 0) {
        if (!err[0] || ms.r || ms.n)
            abort();
        return 0;
    }
    check(ms.sync_token);
    for (size_t i = 0; i < ms.n; i++) {
        const struct dav_response *r = &ms.r[i];
        check(r->href);
        check(r->etag);
        check(r->displayname);
        check(r->sync_token);
        check(r->ctag);
        check(r->calendar_data);
        check(r->home);
        check(r->principal);
    }
    dav_xml_free(&ms);
    return 0;
}
