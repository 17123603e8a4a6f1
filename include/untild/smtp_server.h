/* smtp_server.h - the ESMTP submission listener (RFC 5321 / 6409): an
 * explicit per-session state machine on the event loop, GnuTLS for
 * STARTTLS and implicit TLS, bounded lines, per-state timeouts.
 *
 * It knows the protocol only; every decision is asked of the hooks (the
 * gate). Replies given by hooks are "CODE TEXT" strings such as
 * "550 5.7.1 Quiet until ...". */
#ifndef UNTILD_SMTP_SERVER_H
#define UNTILD_SMTP_SERVER_H

#include <stddef.h>
#include <time.h>

struct loop;
struct config;
struct smtp_server;
struct smtp_session;

struct smtp_rcpt {
    char *addr;     /* forward path without <> (source route kept as sent) */
    char *params;   /* ESMTP parameters (NOTIFY=, ORCPT=), NULL if none */
};

struct smtp_envelope {
    char *mail_from;         /* reverse path without <> ("" = null sender) */
    char *mail_params;       /* all MAIL FROM parameters, raw, NULL if none */
    struct smtp_rcpt *rcpts; /* accepted recipients */
    size_t nrcpts;
    char *helo;
};

struct smtp_hooks {
    void *arg;
    /* AUTH PLAIN/LOGIN: decide, then call smtp_auth_done (may be later). */
    void (*auth)(void *arg, struct smtp_session *s, const char *user,
                 const char *pass);
    /* MAIL FROM after syntax checks: return 0 to accept (server replies
     * 250), or write a full reply ("452 4.3.1 ...") into reply and return
     * its code. */
    int (*mail)(void *arg, struct smtp_session *s, const char *from,
                const char *params, char *reply, size_t replysz);
    /* RCPT TO: same convention. */
    int (*rcpt)(void *arg, struct smtp_session *s, const char *rcpt,
                const char *params, char *reply, size_t replysz);
    /* End of DATA: msg is the un-dot-stuffed message with CRLF line ends
     * (bare LF converted to CRLF; a bare CR is refused before this), NUL
     * after its last byte, owned by the session until
     * smtp_data_done. The hook must eventually call smtp_data_done exactly
     * once; the session object stays valid until then, even if the peer
     * has gone away. A message above [smtp] spill_threshold was received
     * into an unlinked temp file under state_dir and msg maps it
     * (read-only): the pointer works the same for every reader. */
    void (*data)(void *arg, struct smtp_session *s,
                 const struct smtp_envelope *env, const char *msg,
                 size_t len);
};

struct smtp_server *smtp_server_new(const struct config *c, struct loop *l,
                                    const struct smtp_hooks *hooks);
/* Bind every [smtp] listen / listen_tls address without listening yet
 * (start-up binds while it may still have privileges; connections are
 * refused until smtp_server_listen). Returns 0 or -1 (logged). */
int smtp_server_bind(struct smtp_server *srv);
/* Listen on every bound address (binding first if nothing is bound).
 * Returns 0 or -1 (logged). */
int smtp_server_listen(struct smtp_server *srv);
/* Re-read config values that may change on SIGHUP (limits, cert). */
int smtp_server_reconfigure(struct smtp_server *srv, const struct config *c);
void smtp_server_free(struct smtp_server *srv);
size_t smtp_server_sessions(const struct smtp_server *srv);
/* Bound port of listener i (listen[] first, then listen_tls[]), -1 if none;
 * for tests that listen on port 0. */
int smtp_server_port(const struct smtp_server *srv, size_t i);

/* AUTH outcomes. A refusal is answered only after [smtp]
 * auth_failure_delay (the session reads nothing meanwhile); LIMITED (too
 * many failures, nothing was checked) is answered 421 after the delay and
 * the session closes. */
enum {
    SMTP_AUTH_LIMITED = -2,  /* 421, then close */
    SMTP_AUTH_TEMPFAIL = -1, /* could not be checked: 454 */
    SMTP_AUTH_REFUSED = 0,   /* 535 */
    SMTP_AUTH_OK = 1         /* 235 */
};
void smtp_auth_done(struct smtp_session *s, int ok);
/* reply: full "CODE TEXT"; multi-line replies separated by '\n'. */
void smtp_data_done(struct smtp_session *s, const char *reply);

/* Session facts. */
const char *smtp_session_user(const struct smtp_session *s); /* NULL if not authenticated */
const char *smtp_session_pass(const struct smtp_session *s); /* for auth = upstream */
int smtp_session_loopback(const struct smtp_session *s);
int smtp_session_tls(const struct smtp_session *s);
const char *smtp_session_peer(const struct smtp_session *s); /* "ip:port" */
const char *smtp_session_addr(const struct smtp_session *s); /* "ip" (no port) */
unsigned long smtp_session_id(const struct smtp_session *s);
void smtp_session_set_data(struct smtp_session *s, void *p);  /* gate's per-session state */
void *smtp_session_get_data(const struct smtp_session *s);

#endif
