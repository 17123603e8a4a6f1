/* fuzz_httpapi.c - libFuzzer target for the HTTP API's request layer
 * (http_api_req.c): the input's first line is "METHOD PATH?QUERY", the
 * rest the body; every routed call's words are checked (a login's user
 * and password too), every refusal's JSON must parse. The whole input is also read as a spool file for the
 * held message preview. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>
#include "untild/http_api_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *arg(char *query, const char *name)
{
    size_t n = strlen(name);
    for (char *p = query; p && *p;) {
        char *amp = strchr(p, '&');
        if (!strncmp(p, name, n) && p[n] == '=')
            return p + n + 1;   /* up to the end: a fuzzed value may hold '&' */
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size + 1);
    if (!in)
        return 0;
    memcpy(in, data, size);
    in[size] = '\0';
    char *nl = memchr(in, '\n', size), *body = nl ? nl + 1 : in + size;
    size_t blen = (size_t)(in + size - body);
    if (nl)
        *nl = '\0';
    char *sp = strchr(in, ' '), *path = sp ? sp + 1 : (char *)"/api/v1/status";
    if (sp)
        *sp = '\0';
    char *qm = strchr(path, '?');
    if (qm)
        *qm++ = '\0';
    /* ctype= stands for the Content-Type header (the CSV import reads it) */
    struct api_query q = { arg(qm, "limit"), arg(qm, "after"), arg(qm, "address"), arg(qm, "at"),
                           arg(qm, "from"), arg(qm, "who"), arg(qm, "since"), arg(qm, "days"),
                           arg(qm, "ctype") };
    struct api_call c;
    struct api_err e;
    if (api_route(in, path, &q, body, blen, &c, &e) == 0) {
        if (c.argc < 1 || c.argc >= API_MAX_WORDS)
            abort();
        for (int i = 0; i < c.argc; i++)
            if (!c.argv[i])
                abort();
        /* a login's user and password are bounded, the user has no
         * control character (it is logged and becomes a rep) */
        if (c.op == API_LOGIN) {
            if (!c.user || !c.pass || !*c.user || !*c.pass || strlen(c.user) >= API_LOGIN_USER_MAX ||
                strlen(c.pass) >= API_LOGIN_PASS_MAX)
                abort();
            for (const char *p = c.user; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                    abort();
        } else if (c.user || c.pass) {
            abort();
        }
        api_call_free(&c);
        api_err_from_control(c.op, 2, body, &e);
    }
    char *j = api_err_json(&e);
    json_object *o = j ? json_tokener_parse(j) : NULL;
    if (j && !o)
        abort();
    json_object_put(o);
    free(j);
    o = json_object_new_object();
    api_preview((const char *)data, size, o);
    if (!json_object_to_json_string(o))
        abort();
    json_object_put(o);
    free(in);
    return 0;
}
