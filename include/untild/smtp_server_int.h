/* smtp_server_int.h - what the two files of the SMTP listener share, and
 * nothing else includes: smtp_server.c (sessions, commands, DATA, the
 * input pump, listeners) and smtp_server_auth.c (STARTTLS and GnuTLS,
 * AUTH/SASL, the auth hook's answer). Both run on the loop thread only. */
#ifndef UNTILD_SMTP_SERVER_INT_H
#define UNTILD_SMTP_SERVER_INT_H

#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <gnutls/gnutls.h>
#include "untild/config.h"
#include "untild/smtp_server.h"

#define CMD_LINE_MAX   512      /* RFC 5321 4.5.3.1.4, CRLF included */
#define AUTH_LINE_MAX  4096     /* SASL responses may exceed a command line */
#define DATA_LINE_MAX  1000     /* RFC 5321 4.5.3.1.6, CRLF included */
#define READ_CHUNK     16384
#define IN_CAP         65536
#define OUT_HIGH       (256 * 1024) /* stop reading commands above this */
#define MAX_RCPTS      1000
#define MAX_LISTENERS  (2 * CONFIG_MAX_LISTEN)
#define FUTURE_INTERVAL 2592000
#define SPILL_CHUNK    65536    /* staging buffer of a message being spilled */

enum sstate {
    S_READY,        /* greeting sent, no EHLO yet */
    S_EHLO,         /* after EHLO/HELO, no transaction */
    S_MAIL,         /* MAIL accepted */
    S_RCPT,         /* at least one RCPT accepted */
    S_DATA,         /* reading message text */
    S_STARTTLS,     /* "220 Ready to start TLS" queued, waiting for flush */
    S_TLS,          /* TLS handshake in progress */
    S_AUTH,         /* waiting for a SASL continuation line */
    S_CLOSING       /* flush the output, then close */
};

enum waitfor { W_NONE, W_AUTH, W_AUTH_DELAY, W_DATA };
enum authmech { M_PLAIN, M_LOGIN_USER, M_LOGIN_PASS };

struct tls_cred {
    gnutls_certificate_credentials_t x;
    int refs;               /* the server's one + one per TLS session */
};

struct listener {
    int fd;
    int tls;                /* implicit TLS */
    int port;
    int listening;
    struct smtp_server *srv;
};

struct smtp_server {
    const struct config *cfg;
    struct loop *loop;
    struct smtp_hooks hooks;
    struct listener ls[MAX_LISTENERS];
    size_t nls;
    struct tls_cred *cred;  /* NULL: no certificate configured */
    char hostname[256];
    size_t max_message_size;
    int max_sessions;
    int max_per_addr;       /* 0: no limit */
    int timeout_command, timeout_data;
    int session_deadline;   /* seconds, 0: none */
    int auth_delay_ms;
    size_t spill_threshold; /* 0: never spill */
    const char *spill_dir;  /* state_dir, NULL: never spill */
    enum auth_mode auth;
    struct smtp_session *sessions;
    size_t nsessions;
    unsigned long next_id;
};

struct smtp_session {
    struct smtp_server *srv;
    struct smtp_session *prev, *next;
    unsigned long id;
    int fd;
    char peer[64];
    char addr[64];           /* peer without the port */
    int loopback;
    enum sstate state;
    enum sstate after_auth;  /* state to return to after S_AUTH */
    enum waitfor waiting;
    int implicit_tls;
    gnutls_session_t tls;
    struct tls_cred *cred;
    int tls_on;
    int eof, dead, io_error, in_pump;
    int discarding;          /* dropping an over-long line up to its LF */
    int helo_seen;
    uint64_t timer;
    int64_t timer_due;       /* when s->timer fires (loop_now_ms) */
    uint64_t life_timer;     /* [smtp] session_deadline */
    uint64_t auth_timer;     /* a refused AUTH's delayed answer */
    int auth_result;         /* SMTP_AUTH_* waiting for auth_timer */
    int64_t deadline;        /* when the session really times out */
    char in[IN_CAP];
    size_t inlen;
    char *out;
    size_t outlen, outcap;
    /* transaction */
    struct smtp_envelope env;
    size_t rcptcap;
    char *msg;               /* in memory; once spilled, a staging buffer */
    size_t msglen, msgcap;   /* msglen counts the whole message */
    int spill_fd;            /* -1: in memory */
    size_t staged;           /* bytes in msg not yet written to spill_fd */
    char *map;               /* the spilled message, mapped at end of DATA */
    size_t maplen;
    int data_toobig, data_toolong, data_prev_crlf, data_barecr, data_ioerr;
    /* auth */
    enum authmech mech;
    char *auth_user, *auth_pass;     /* pending, while the hook decides */
    char *user, *pass;               /* authenticated */
    void *data;
    /* counters for the close log line */
    unsigned ncmds, nmsgs, nrcpts;
};


struct cmd;

/* ---- smtp_server.c ---- */

/* Queue n bytes of output; -1 (and io_error set) when out of memory. */
int smtp_out_add(struct smtp_session *s, const char *p, size_t n);
void smtp_txn_reset(struct smtp_session *s);
void smtp_session_free(struct smtp_session *s);
int smtp_session_pump(struct smtp_session *s);

/* ---- smtp_server_auth.c ---- */

struct tls_cred *smtp_tls_cred_load(const char *cert, const char *key);
void smtp_tls_cred_unref(struct tls_cred *c);
int smtp_tls_start(struct smtp_session *s);
/* One handshake step: 1 done, 0 in progress, -1 failed. */
int smtp_tls_handshake(struct smtp_session *s);
int smtp_auth_allowed(const struct smtp_session *s);
void smtp_auth_continue(struct smtp_session *s, const char *line);
void smtp_cmd_starttls(struct smtp_session *s, char *args);
void smtp_cmd_auth(struct smtp_session *s, char *args);

/* ---- small helpers ---- */

static void wipe_free(char *p)
{
    if (p) {
        explicit_bzero(p, strlen(p));
        free(p);
    }
}

static int in_txn(const struct smtp_session *s)
{
    return s->state == S_MAIL || s->state == S_RCPT;
}

static inline void reply(struct smtp_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void reply(struct smtp_session *s, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 2, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof buf - 3)
        n = (int)(sizeof buf - 3);
    buf[n++] = '\r';
    buf[n++] = '\n';
    smtp_out_add(s, buf, (size_t)n);
}

#endif
