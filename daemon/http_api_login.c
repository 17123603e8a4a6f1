/* http_api_login.c - browser login for the HTTP API, on the loop thread
 * (see http_api_int.h; the session table is http_session.c).
 *
 * POST /login checks the user and password exactly as SMTP AUTH does:
 * gate_check_password runs the passwd file's crypt on the AUTH workers
 * (or asks the upstream), counts a refusal per client address and per
 * user in the same table, and refuses unchecked past [smtp]
 * auth_max_failures (429 here). The request waits for the verdict
 * (http_api_finish from the callback); a refusal is answered after [smtp]
 * auth_failure_delay by the connection thread, as SMTP delays its 535.
 * Unknown user and wrong password give the same answer after the same
 * work (auth.c hashes for unknown users too).
 *
 * Every other cookie request goes through http_api_session: the session
 * must be alive, the Origin (if any) this server's, and a change (POST,
 * PUT, PATCH, DELETE) must carry the session's X-CSRF-Token. Who is an
 * admin is [http] admins, read at each request (a reload takes effect). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>
#include "untild/http_api_int.h"
#include "untild/daemon.h"
#include "untild/gate.h"
#include "untild/log.h"
#include "untild/json.h"

static int changes_state(const char *method)
{
    return !strcmp(method, "POST") || !strcmp(method, "PUT") || !strcmp(method, "PATCH") ||
           !strcmp(method, "DELETE");
}

/* w's answer: {"user": REP, "admin": BOOL[, "csrf": TOKEN][, "token": NAME]}. */
static void answer_who(struct api_work *w, const char *user, int admin, const char *csrf, const char *token)
{
    json_object *o = json_object_new_object();
    const char *s;
    if (!o) {
        http_api_refuse(w, 500, "out of memory", "out of memory");
        return;
    }
    ujson_add_str(o, "user", user);
    json_object_object_add(o, "admin", json_object_new_boolean(admin));
    if (csrf)
        ujson_add_str(o, "csrf", csrf);
    if (token)
        ujson_add_str(o, "token", token);
    s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
    w->out = s ? strdup(s) : NULL;
    w->outlen = w->out ? strlen(w->out) : 0;
    w->rc = 0;
    if (!w->out)
        http_api_refuse(w, 500, "out of memory", "out of memory");
    json_object_put(o);
}

static void login_done(void *arg, int verdict)
{
    struct api_work *w = arg;
    struct http_api *a = w->a;
    struct untild *u = a->u;
    const struct config *c;
    char csrf[HTTP_SESSION_HEX], evicted[HTTP_SESSION_REP_MAX];
    if (a->dead)        /* stopped meanwhile: nobody waits for the answer */
        goto out;
    c = u->cfg;
    if (verdict < 0) {
        http_api_refuse(w, 503, "unavailable", "the credentials could not be checked; try again later");
        goto out;
    }
    if (verdict == 0) {
        log_info("api: login as %s from %s failed", w->call.user, w->client);
        http_api_audit(u, w, "api-login-failed", NULL, 401);
        http_api_refuse(w, 401, "unauthorized", "wrong user name or password");
        w->delay_s = c->auth_failure_delay;
        goto out;
    }
    if (w->cookie[0])       /* the browser's previous session, if any, is replaced */
        http_session_end(a->sessions, w->cookie);
    struct http_session_limits lim = { c->http_session_idle, c->http_session_lifetime,
                                       (size_t)c->http_max_sessions_per_rep };
    int ended = http_session_create(a->sessions, w->call.user, untild_now(u), &lim, w->new_session, csrf, evicted,
                                    sizeof evicted);
    if (ended < 0) {
        http_api_refuse(w, 503, "unavailable", "cannot open a session");
        goto out;
    }
    if (ended == HTTP_SESSION_ENDED_LRU)
        log_warn("api: [http] max_sessions (%d) reached: the least recently used session (%s) ended",
                 c->http_max_sessions, evicted);
    else if (ended == HTTP_SESSION_ENDED_OWN)
        log_info("api: %s has [http] max_sessions_per_rep (%d) sessions: their least recently used one ended",
                 evicted, c->http_max_sessions_per_rep);
    int admin = http_session_is_admin(c->http_admins, w->call.user);
    answer_who(w, w->call.user, admin, csrf, NULL);
    log_info("api: %s logged in from %s%s", w->call.user, w->client, admin ? " (admin)" : "");
    http_api_audit(u, w, "api-login", w->call.user, 200);
    explicit_bzero(csrf, sizeof csrf);
out:
    http_api_finish(w);
}

int http_api_login(struct untild *u, struct api_work *w)
{
    const struct config *c = u->cfg;
    if (!w->local) {
        http_api_refuse(w, 403, "forbidden", "log in over HTTPS ([http] tls_cert) or from this host (loopback)");
        return 1;
    }
    if (w->cross_site) {
        http_api_refuse(w, 403, "csrf", "a login from another site is refused (Origin)");
        return 1;
    }
    if (c->auth != AUTH_PASSWD && c->auth != AUTH_UPSTREAM) {
        http_api_refuse(w, 403, "forbidden", "login needs [smtp] auth = passwd:FILE or upstream; "
                                             "use an API token");
        return 1;
    }
    int rc = gate_check_password(u, "HTTP login", w->client, w->call.user, w->call.pass, login_done, w);
    explicit_bzero(w->call.pass, strlen(w->call.pass));
    if (rc == GATE_AUTH_LIMITED) {
        http_api_audit(u, w, "api-login-limited", NULL, 429);
        http_api_refuse(w, 429, "too many requests", "too many failed logins; try again later");
        w->retry_after = c->auth_failure_window;
        return 1;
    }
    if (rc < 0) {
        http_api_refuse(w, 503, "unavailable", "the credentials could not be checked; try again later");
        return 1;
    }
    log_debug("api: login as %s from %s: checking", w->call.user, w->client);
    return 0;
}

int http_api_session(struct untild *u, struct api_work *w, struct api_who *who)
{
    const struct config *c = u->cfg;
    struct http_session_info s;
    if (!w->cookie[0] || !http_session_find(w->a->sessions, w->cookie, untild_now(u), c->http_session_idle,
                                            c->http_session_lifetime, &s)) {
        w->clear_cookie = 1;
        http_api_refuse(w, 401, "unauthorized", "no session or it has ended: log in again");
        return 0;
    }
    snprintf(who->name, sizeof who->name, "%s", s.rep);
    snprintf(who->rep, sizeof who->rep, "%s", s.rep);
    memcpy(who->csrf, s.csrf, sizeof who->csrf);
    who->admin = http_session_is_admin(c->http_admins, s.rep);
    who->session = 1;
    const char *why = w->cross_site ? "a request from another site (Origin) is refused"
                    : changes_state(w->method) && !http_session_csrf_ok(s.csrf, w->csrf)
                    ? "a change needs the session's X-CSRF-Token header" : NULL;
    if (why) {
        log_warn("api: %s %s by rep %s from %s refused: %s", w->method, w->call.argv[0], s.rep, w->client, why);
        http_api_audit(u, w, "api-csrf", s.rep, 403);
        http_api_refuse(w, 403, "csrf", why);
        return 0;
    }
    return 1;
}

void http_api_me(struct untild *u, struct api_work *w, const struct api_who *who)
{
    (void)u;
    if (who->session)
        answer_who(w, who->rep, who->admin, who->csrf, NULL);
    else
        answer_who(w, who->admin ? who->name : who->rep, who->admin, NULL, who->name);
}

void http_api_logout(struct untild *u, struct api_work *w, const struct api_who *who)
{
    if (!who->session) {
        http_api_refuse(w, 400, "bad request", "logout ends a browser session; an API token is revoked "
                                               "with untilctl token revoke");
        return;
    }
    http_session_end(w->a->sessions, w->cookie);
    w->clear_cookie = 1;
    log_info("api: %s logged out from %s", who->rep, w->client);
    http_api_audit(u, w, "api-logout", who->rep, 200);
    answer_who(w, who->rep, who->admin, NULL, NULL);
}
