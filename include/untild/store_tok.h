/* store_tok.h - API tokens in the store (schema v7, table api_tokens):
 * name, the SHA-256 of the token (hex), scope ("admin" or "rep:ADDRESS"),
 * who made it and when. The token itself is never stored (tokens.c makes
 * and checks it). Local to this gateway: not shared through [store] url.
 * Main thread only, like store.h; -1 with errno on failure (logged). */
#ifndef UNTILD_STORE_TOK_H
#define UNTILD_STORE_TOK_H

#include <time.h>

struct store;

struct store_token {
    const char *name, *hash, *scope, *by;
    time_t created;
};

/* Add a token. -1 with EEXIST when the name is taken. */
int store_token_add(struct store *st, const struct store_token *t);
/* Remove one. -1 with ENOENT when there was none. */
int store_token_del(struct store *st, const char *name);
/* Visit every token by name; stop if fn returns != 0. */
int store_token_foreach(struct store *st, int (*fn)(const struct store_token *t, void *arg), void *arg);

#endif
