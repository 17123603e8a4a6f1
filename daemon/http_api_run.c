/* http_api_run.c - the HTTP API's part on the loop thread (see
 * http_api_int.h): the rate limit on failed tokens, the token check (or
 * the browser session's, http_api_login.c), the control socket's verb
 * (control_exec_page: the same decisions, authorisation and audit as
 * untilctl), and the API's own audit row (which token or rep, from where)
 * for every change and every refused token. Bounded work: one token table
 * scan (a handful of rows) or one session table scan, and one verb. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "untild/http_api_int.h"
#include "untild/auth.h"
#include "untild/daemon.h"
#include "untild/json.h"
#include "untild/log.h"
#include "untild/loop.h"
#include "untild/store.h"
#include "untild/strbuf.h"
#include "untild/windows.h"

#define API_LIMIT_KEYS 4096

void http_api_work_free(struct api_work *w)
{
    if (!w)
        return;
    api_call_free(&w->call);
    free(w->out);
    explicit_bzero(w, sizeof *w);   /* the token, cookie and CSRF values; memset before free may be dropped */
    free(w);
}

void http_api_refuse(struct api_work *w, int status, const char *error, const char *reason)
{
    w->status = status;
    w->err.status = status;
    snprintf(w->err.error, sizeof w->err.error, "%s", error);
    w->err.field[0] = '\0';
    snprintf(w->err.reason, sizeof w->err.reason, "%s", reason);
}

void http_api_audit(struct untild *u, struct api_work *w, const char *event, const char *who, int status)
{
    char detail[512];
    snprintf(detail, sizeof detail, "%s %s %s from %s%s: %d", w->method, w->call.argv[0],
             w->call.argc > 1 ? w->call.argv[1] : "", w->client, w->has_auth ? "" : " (session)", status);
    int held = w->call.op == API_HELD_RELEASE || w->call.op == API_HELD_DISCARD;
    int win = w->call.op == API_WINDOWS_END || w->call.op == API_WINDOWS_CHANGE;
    store_audit(u->store, &(struct audit_rec){ untild_now(u), event, who, NULL, win ? w->call.id : NULL,
                held ? w->call.id : NULL, detail });
}

/* 1 when the token is good (w->who set); else w is refused. A request
 * with no credentials at all (no Authorization header, no cookie: a web
 * console asking /me before its login) guessed nothing: 401, neither
 * counted nor audited, so a logged-out page cannot get its address
 * limited. */
static int authenticate(struct untild *u, struct api_work *w, struct token_who *who)
{
    const struct config *c = u->cfg;
    char key[96];
    int64_t now = loop_now_ms(), win = (int64_t)c->auth_failure_window * 1000;
    if (!w->has_auth) {
        log_debug("api: %s %s from %s: no credentials", w->method, w->call.argv[0], w->client);
        http_api_refuse(w, 401, "unauthorized", "an API token (Authorization: Bearer TOKEN) or a session "
                                                "(POST /api/v1/login) is required");
        return 0;
    }
    snprintf(key, sizeof key, "api:%s", w->client);
    if (!u->auth_limits && !(u->auth_limits = auth_limit_new(API_LIMIT_KEYS))) {
        http_api_refuse(w, 503, "unavailable", "out of memory");
        return 0;
    }
    if (auth_limit_over(u->auth_limits, key, now, c->auth_max_failures, win)) {
        log_warn("api: %s refused unchecked: %d failed tokens within auth_failure_window (%d s) reached "
                 "auth_max_failures", w->client, c->auth_max_failures, c->auth_failure_window);
        http_api_refuse(w, 429, "too many requests", "too many failed tokens from this address; try again later");
        return 0;
    }
    int ok = w->token[0] ? tokens_check(u, w->token, who) : 0;
    if (ok < 0) {
        http_api_refuse(w, 503, "unavailable", "cannot read the tokens");
        return 0;
    }
    if (!ok) {
        auth_limit_fail(u->auth_limits, key, now, win);
        log_warn("api: %s %s from %s: %s", w->method, w->call.argv[0], w->client,
                 w->token[0] ? "unknown or revoked token" : "no token");
        http_api_refuse(w, 401, "unauthorized", w->token[0] ? "unknown or revoked token"
                                                    : "an API token is required (Authorization: Bearer TOKEN)");
        http_api_audit(u, w, "api-denied", NULL, 401);
        return 0;
    }
    snprintf(w->who, sizeof w->who, "%s", who->name);
    return 1;
}

/* POST /check: `check` once per address (argv: "check" "--json"
 * [--at X] [--from Y] "--who" ADDRESS...), the answers as
 * {"verdicts": [...]}, in the order asked; an address the verb refuses
 * is {"address": A, "error": REASON}. At most API_CHECK_MAX verbs. */
static void check_many(struct untild *u, struct api_work *w, const struct api_who *who)
{
    char *argv[8];
    int argc = 2, k = 1, at = 1;     /* check ADDRESS --json [--at X] [--from Y] */
    argv[0] = "check";
    for (; k < w->call.argc && strcmp(w->call.argv[k], "--who") && argc < 8; k++)
        argv[argc++] = w->call.argv[k];
    struct strbuf b = { 0 };
    sb_puts(&b, "{\"verdicts\":[");
    w->rc = 0;
    for (int i = k + 1; i < w->call.argc; i++) {
        char *out = NULL, next[NEXT_MAX];
        size_t outlen = 0;
        argv[at] = w->call.argv[i];
        int rc = control_exec_page(u, argc, argv, who->admin, who->admin ? who->name : who->rep, &out, &outlen,
                                   next);
        if (i > k + 1)
            sb_puts(&b, ",");
        if ((rc == 0 || rc == 3) && out) {
            sb_add(&b, out, strcspn(out, "\n"));
        } else {
            /* "check: ADDRESS: why\n" -> "why" */
            char why[300];
            const char *t = out ? out : "failed", *p = strstr(t, ": ");
            p = p && strstr(p + 2, ": ") ? strstr(p + 2, ": ") + 2 : p ? p + 2 : t;
            snprintf(why, sizeof why, "%.*s", (int)strcspn(p, "\n"), p);
            struct json_object *e = json_object_new_object();
            if (e && !(ujson_add_str(e, "address", w->call.argv[i]) | ujson_add_str(e, "error", why)))
                ujson_append(&b, e, UJSON_PLAIN);
            else
                b.oom = 1;
            json_object_put(e);
        }
        free(out);
    }
    sb_puts(&b, "]}\n");
    w->out = sb_take(&b, &w->outlen);
    if (!w->out)
        w->rc = 1;
}

/* Who w acts as: its token (an Authorization header), else its session
 * cookie. 1 when known; else w is refused. */
static int who_is(struct untild *u, struct api_work *w, struct api_who *who)
{
    struct token_who t;
    memset(who, 0, sizeof *who);
    if (!w->has_auth && w->has_cookie)
        return http_api_session(u, w, who);
    if (!authenticate(u, w, &t))
        return 0;
    snprintf(who->name, sizeof who->name, "%s", t.name);
    snprintf(who->rep, sizeof who->rep, "%s", t.rep);
    who->admin = t.admin;
    return 1;
}

/* 1: w is answered; 0: it will be (a login being checked). */
static int run(struct untild *u, struct api_work *w)
{
    struct api_who who;
    if (w->call.op == API_LOGIN)
        return http_api_login(u, w);
    if (!who_is(u, w, &who))
        return 1;
    if (w->call.op == API_ME || w->call.op == API_LOGOUT) {
        (w->call.op == API_ME ? http_api_me : http_api_logout)(u, w, &who);
        return 1;
    }
    /* DELETE /windows/{id} names a window, never an address */
    if (w->call.op == API_WINDOWS_END && !windows_get(u->ix, w->call.id)) {
        http_api_refuse(w, 404, "not found", "no such window");
        return 1;
    }
    if (w->call.op == API_CHECK_MANY) {
        check_many(u, w, &who);
        return 1;
    }
    /* an admin token is its name where the verb wants one (the owner of
     * a window added without --owner and no [daemon] owner); an admin
     * session is its rep */
    w->rc = control_exec_page(u, w->call.argc, w->call.argv, who.admin, who.admin ? who.name : who.rep, &w->out,
                              &w->outlen, w->next);
    int ok = w->rc == 0 || (w->rc == 3 && w->call.op == API_CHECK) ||
             (w->rc == 5 && w->call.op == API_WINDOWS_END_WHO);
    if (w->call.changes || w->rc == 4) {
        http_api_audit(u, w, ok ? "api" : "api-refused", who.name, ok ? 200 : w->rc);
        log_info("api: %s %s %s by %s %s from %s: exit %d", w->method, w->call.argv[0], w->call.id,
                 who.session ? "rep" : "token", who.name, w->client, w->rc);
    }
    if (ok && w->call.op == API_HELD_SHOW)
        snprintf(w->spool_path, sizeof w->spool_path, "%s/spool/held/%s", u->cfg->state_dir, w->call.id);
    return 1;
}

void http_api_finish(struct api_work *w)
{
    struct http_api *a = w->a;
    pthread_mutex_lock(&a->mu);
    w->done = 1;
    pthread_cond_broadcast(&a->cv);
    int last = --w->refs == 0;
    int free_a = --a->pending == 0 && a->dead;
    pthread_mutex_unlock(&a->mu);
    if (last)
        http_api_work_free(w);
    if (free_a)
        http_api_free(a);
}

void http_api_on_loop(void *arg)
{
    struct api_work *w = arg;
    /* dead is set only after every connection thread was joined */
    if (w->a->dead || run(w->a->u, w))
        http_api_finish(w);
}
