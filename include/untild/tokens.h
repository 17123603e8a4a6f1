/* tokens.h - API tokens (issue 14): an admin makes one with
 * `untilctl token add NAME --scope admin|rep:WHO`; it is printed once and
 * only its SHA-256 is stored (store_tok.h); every /api/v1 request presents
 * it as "Authorization: Bearer TOKEN". A rep-scoped token acts as that rep
 * does on the control socket (its own windows and held mail); an admin
 * token as an admin. */
#ifndef UNTILD_TOKENS_H
#define UNTILD_TOKENS_H

#include <stddef.h>

struct untild;
struct strbuf;

#define TOKEN_NAME_MAX 65       /* 1..64 of A-Z a-z 0-9 . _ - */
#define TOKEN_REP_MAX 256
#define TOKEN_HASH_HEX 65       /* SHA-256 in hex, NUL-terminated */
#define TOKEN_MAX 128           /* longest token accepted */

/* Who a checked token is. */
struct token_who {
    char name[TOKEN_NAME_MAX];
    int admin;
    char rep[TOKEN_REP_MAX];    /* rep scope: the rep's identity; "" for admin */
};

/* Any thread. 1 if name is a valid token name. */
int tokens_name_ok(const char *name);
/* Any thread. "admin" or "rep:WHO" (WHO an address, normalised with
 * delims, or a local user name) -> its stored form in out. Returns 0, or
 * -1 with the reason in err. */
int tokens_scope_parse(const char *scope, const char *delims, char *out, size_t outsz, char *err,
                       size_t errsz);
/* Any thread. The hex SHA-256 of token. Returns 0 or -1. */
int tokens_hash(const char *token, char hex[TOKEN_HASH_HEX]);
/* Any thread. Compare n bytes in time independent of where they differ. */
int tokens_equal(const char *a, const char *b, size_t n);

/* Loop thread (the store). Find the token: 1 with *who filled, 0 unknown
 * (or malformed), -1 store error. Every stored hash is compared, in
 * constant time each. */
int tokens_check(struct untild *u, const char *token, struct token_who *who);

/* Loop thread: the control socket's `token add|list|revoke` (admins only,
 * checked by the dispatch). Returns the exit status (0, 1 error, 2 usage,
 * 5 not found); the text (or JSON with json) goes to b. */
int tokens_cmd(struct untild *u, int argc, char **argv, int json, struct strbuf *b);

#endif
