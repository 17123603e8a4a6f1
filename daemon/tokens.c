/* tokens.c - API tokens (issue 14; see tokens.h): made, listed, revoked
 * through the control socket, checked for each API request.
 *
 * A token is "utk_" + 64 hex digits of gnutls_rnd(GNUTLS_RND_KEY) (256
 * bits): guessing is hopeless, so a fast hash (SHA-256) is the right one
 * to store, and the lookup may compare hashes rather than stretch a
 * password. Loop thread for everything that touches the store. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <json-c/json.h>
#include "untild/tokens.h"
#include "untild/address.h"
#include "untild/daemon.h"
#include "untild/log.h"
#include "untild/store.h"
#include "untild/store_tok.h"
#include "untild/strbuf.h"
#include "untild/when.h"

#define TOKEN_PREFIX "utk_"

int tokens_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= TOKEN_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && !strchr("._-", name[i]))
            return 0;
    return 1;
}

int tokens_scope_parse(const char *scope, const char *delims, char *out, size_t outsz, char *err,
                       size_t errsz)
{
    if (scope && !strcmp(scope, "admin")) {
        snprintf(out, outsz, "admin");
        return 0;
    }
    if (!scope || strncmp(scope, "rep:", 4) || !scope[4]) {
        snprintf(err, errsz, "--scope must be admin or rep:WHO");
        return -1;
    }
    const char *who = scope + 4;
    char key[ADDR_MAX];
    const char *why = NULL;
    if (strchr(who, '@')) {
        if (address_normalize(who, delims, key, sizeof key, &why) < 0) {
            snprintf(err, errsz, "--scope rep:%s: %s", who, why ? why : "not an address");
            return -1;
        }
    } else {
        /* a local user name, as the control socket's reps are */
        size_t n = strlen(who);
        if (n >= sizeof key || strspn(who, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != n) {
            snprintf(err, errsz, "--scope rep:WHO: WHO is an address or a user name");
            return -1;
        }
        snprintf(key, sizeof key, "%s", who);
    }
    if ((size_t)snprintf(out, outsz, "rep:%s", key) >= outsz) {
        snprintf(err, errsz, "--scope: too long");
        return -1;
    }
    return 0;
}

int tokens_hash(const char *token, char hex[TOKEN_HASH_HEX])
{
    unsigned char d[32];
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, token, strlen(token), d) < 0)
        return -1;
    for (size_t i = 0; i < sizeof d; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return 0;
}

int tokens_equal(const char *a, const char *b, size_t n)
{
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

struct check_ctx {
    const char *hash;
    struct token_who *who;
    int found;
};

static int check_one(const struct store_token *t, void *arg)
{
    struct check_ctx *c = arg;
    /* every row is compared (no early exit on a match) */
    if (t->hash && strlen(t->hash) == TOKEN_HASH_HEX - 1 && tokens_equal(t->hash, c->hash, TOKEN_HASH_HEX - 1)
        && !c->found) {
        c->found = 1;
        snprintf(c->who->name, sizeof c->who->name, "%s", t->name ? t->name : "");
        c->who->admin = t->scope && !strcmp(t->scope, "admin");
        snprintf(c->who->rep, sizeof c->who->rep, "%s",
                 t->scope && !strncmp(t->scope, "rep:", 4) ? t->scope + 4 : "");
    }
    return 0;
}

int tokens_check(struct untild *u, const char *token, struct token_who *who)
{
    char hash[TOKEN_HASH_HEX];
    memset(who, 0, sizeof *who);
    if (!token || strlen(token) >= TOKEN_MAX || strncmp(token, TOKEN_PREFIX, strlen(TOKEN_PREFIX)))
        return 0;
    if (tokens_hash(token, hash) < 0)
        return -1;
    struct check_ctx c = { hash, who, 0 };
    if (store_token_foreach(u->store, check_one, &c) < 0)
        return -1;
    if (c.found && !who->admin && !who->rep[0])
        return 0;   /* a scope this version does not know */
    return c.found;
}

static int token_add(struct untild *u, int argc, char **argv, int json, struct strbuf *b)
{
    char scope[TOKEN_REP_MAX + 8], err[256], token[TOKEN_MAX], hash[TOKEN_HASH_HEX];
    const char *sc = NULL;
    for (int i = 3; i < argc - 1; i++)
        if (!strcmp(argv[i], "--scope"))
            sc = argv[i + 1];
    if (argc < 3 || !tokens_name_ok(argv[2])) {
        sb_puts(b, "usage: token add NAME --scope admin|rep:WHO (NAME: 1 to 64 of A-Z a-z 0-9 . _ -)\n");
        return 2;
    }
    if (tokens_scope_parse(sc, u->pcfg.delims, scope, sizeof scope, err, sizeof err) < 0) {
        sb_printf(b, "token add: %s\n", err);
        return 2;
    }
    unsigned char rnd[32];
    if (gnutls_rnd(GNUTLS_RND_KEY, rnd, sizeof rnd) < 0) {
        sb_puts(b, "token add: no random numbers\n");
        return 1;
    }
    size_t n = (size_t)snprintf(token, sizeof token, TOKEN_PREFIX);
    for (size_t i = 0; i < sizeof rnd; i++)
        n += (size_t)snprintf(token + n, sizeof token - n, "%02x", rnd[i]);
    gnutls_memset(rnd, 0, sizeof rnd);
    time_t now = untild_now(u);
    struct store_token t = { argv[2], hash, scope, "admin", now };
    if (tokens_hash(token, hash) < 0 || store_token_add(u->store, &t) < 0) {
        int exists = errno == EEXIST;
        gnutls_memset(token, 0, sizeof token);
        sb_printf(b, "token add: %s\n", exists ? "a token of that name exists (revoke it first)"
                                                : "cannot store the token");
        return exists ? 2 : 1;
    }
    store_audit(u->store, &(struct audit_rec){ now, "token-added", "admin", NULL, NULL, NULL, argv[2] });
    log_info("api: token %s (%s) added", argv[2], scope);
    if (json) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(argv[2]));
        json_object_object_add(o, "scope", json_object_new_string(scope));
        json_object_object_add(o, "token", json_object_new_string(token));
        sb_printf(b, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
    } else
        sb_printf(b, "%s\n", token);   /* shown this once */
    gnutls_memset(token, 0, sizeof token);
    return 0;
}

struct list_ctx { struct strbuf *b; json_object *arr; const char *tz; };

static int list_one(const struct store_token *t, void *arg)
{
    struct list_ctx *c = arg;
    char when[64];
    when_format(t->created, c->tz, when, sizeof when);
    if (c->arr) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(t->name ? t->name : ""));
        json_object_object_add(o, "scope", json_object_new_string(t->scope ? t->scope : ""));
        json_object_object_add(o, "created", json_object_new_string(when));
        json_object_array_add(c->arr, o);
    } else {
        /* names and scopes were checked when added */
        sb_printf(c->b, "%-24s %-40s %s\n", t->name, t->scope, when);
    }
    return 0;
}

int tokens_cmd(struct untild *u, int argc, char **argv, int json, struct strbuf *b)
{
    if (argc >= 2 && !strcmp(argv[1], "add"))
        return token_add(u, argc, argv, json, b);
    if (argc >= 2 && !strcmp(argv[1], "list")) {
        struct list_ctx c = { b, json ? json_object_new_array() : NULL, u->cfg->timezone };
        if (!json)
            sb_printf(b, "%-24s %-40s %s\n", "NAME", "SCOPE", "CREATED");
        int rc = store_token_foreach(u->store, list_one, &c);
        if (c.arr) {
            sb_printf(b, "%s\n", json_object_to_json_string_ext(c.arr, JSON_C_TO_STRING_PLAIN));
            json_object_put(c.arr);
        }
        return rc < 0 ? 1 : 0;
    }
    if (argc == 3 && !strcmp(argv[1], "revoke")) {
        if (store_token_del(u->store, argv[2]) < 0) {
            int nf = errno == ENOENT;
            sb_printf(b, "token revoke: %s\n", nf ? "no token of that name" : "cannot revoke");
            return nf ? 5 : 1;
        }
        store_audit(u->store, &(struct audit_rec){ untild_now(u), "token-revoked", "admin", NULL, NULL, NULL,
                    argv[2] });
        log_info("api: token %s revoked", argv[2]);
        sb_printf(b, "revoked %s\n", argv[2]);
        return 0;
    }
    sb_puts(b, "usage: token add NAME --scope admin|rep:WHO | token list | token revoke NAME\n");
    return 2;
}
