/* store_pg.h - the shared state of several gateways on PostgreSQL
 * ([store] url): a database thread replays the local journal to
 * PostgreSQL and brings other gateways' changes back to the loop. The
 * loop never waits for PostgreSQL: it writes the local SQLite store (and
 * its journal) and decides from the window index and that local copy. */
#ifndef UNTILD_STORE_PG_H
#define UNTILD_STORE_PG_H

#include <stdio.h>

struct untild; struct strbuf; struct config;
struct store_pg;

/* Turn sharing on for u->store (store_share) and start the database
 * thread. NULL (logged) if it cannot start. Loop thread, after store_open. */
struct store_pg *store_pg_start(struct untild *u);
/* Stop and join the thread, run what it posted, free. NULL is fine. */
void store_pg_stop(struct store_pg *p);

/* untilctl status: state (connected, degraded since ..., connecting),
 * journal backlog, propagation latency: lines of text into b, or (_json)
 * one json-c object (NULL on ENOMEM). */
struct json_object;
void store_pg_status(const struct store_pg *p, struct strbuf *b);
struct json_object *store_pg_status_json(const struct store_pg *p);

/* untild -t: connect, check the schema version; one line to out.
 * Blocks (connect_timeout 5 s). 0 if usable, -1 if not. */
int store_pg_check(const struct config *c, FILE *out);

#endif
