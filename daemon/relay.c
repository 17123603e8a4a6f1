/* relay.c - upstream delivery: SMTP through libcurl, or a local Maildir.
 *
 * Synopsis: relay_new() starts a pool of worker threads; relay_submit()
 * queues a message from the loop thread; a worker delivers it and hands the
 * result back with loop_post(), so the done callback runs on the loop thread.
 *
 * Each worker owns one CURL easy handle kept between jobs: libcurl keeps the
 * SMTP connection open and reuses it (MAIL/RCPT/DATA only, no new EHLO), which
 * is what makes relaying cheap. After any error the handle is recreated so
 * the next job starts from a fresh connection.
 *
 * libcurl does not report the upstream's reply text, so the SMTP dialogue is
 * captured from CURLOPT_DEBUGFUNCTION (CURLINFO_HEADER_IN/OUT): the first
 * 4xx/5xx line is what the client hears on failure, the reply after each
 * RCPT is that recipient's code, the reply after the data is the success
 * text (see docs/HACKING.md, "Library pitfalls").
 *
 * Diagnostics: failures are logged at warn with the upstream's reply;
 * credentials are never logged (the AUTH lines are not even looked at).
 */
#include "untild/relay.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "untild/config.h"
#include "untild/log.h"
#include "untild/loop.h"
#include "untild/secret.h"
#include "untild/smtp_dsn.h"
#include "untild/sysutil.h"

#define RELAY_MAX_WORKERS 256
#define RELAY_MAX_LINE 1000     /* longest reply line we keep (RFC 5321 bound) */

enum rjob_kind { RJ_SEND, RJ_VERIFY };

struct rjob {
    struct rjob *next;
    enum rjob_kind kind;
    struct relay_job job;         /* caller's pointers, valid until done */
    relay_done_fn done;
    relay_auth_fn auth_done;
    void *arg;
    char *vuser, *vpass;          /* verify: our own copies */
    char *loaded;                 /* the message job.load read, ours */
    int verdict;
    struct relay_result res;
};

struct relay;

struct worker {
    struct relay *r;
    pthread_t tid;
    int started;
    CURL *h;                      /* kept across jobs: the connection lives here */
    char errbuf[CURL_ERROR_SIZE];
};

struct relay {
    struct loop *loop;
    /* copies of the config, so a config reload cannot pull them away */
    char *url;                    /* NULL: maildir mode */
    char *maildir;
    char *tls_ca;
    char *username, *password;
    char host[256];               /* for maildir names, made safe */
    int tls_none;
    long timeout;                 /* seconds */

    pthread_mutex_t mu;
    /* One post per queued job (and one per worker at stop). Not a condition
     * variable: glibc's pthread_cond_signal can wait for earlier waiters to
     * be scheduled, and workers run below the loop (measured: the loop
     * slept there during a mass release); sem_post never waits. */
    sem_t work;
    struct rjob *head, *tail;
    int stopping;
    unsigned long counter;        /* maildir unique names; under mu */

    struct worker *workers;
    int nworkers;
};

/* ---------- small helpers ---------- */

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static void copy_text(char *dst, size_t cap, const char *src, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* ---------- SMTP dialogue capture ---------- */

enum { CMD_NONE, CMD_MAIL, CMD_RCPT, CMD_DATA, CMD_AUTH, CMD_OTHER };

struct capture {
    int last_cmd;
    int mail_sent;              /* a MAIL FROM went out: message stage */
    int sent_auth;
    size_t nrcpt_sent;
    int *rcpt_codes;            /* may be NULL (verify) */
    size_t nrcpts;
    int post_data;              /* 354 seen: the next reply is the message's */
    int fail_code, fail_in_message;
    char fail_text[512];
    int final_code;
    char final_text[512];
};

static int starts_ci(const char *s, size_t n, const char *word)
{
    size_t w = strlen(word);
    return n >= w && strncasecmp(s, word, w) == 0;
}

static void capture_out(struct capture *c, const char *s, size_t n)
{
    if (starts_ci(s, n, "RCPT ")) {
        c->last_cmd = CMD_RCPT;
        c->nrcpt_sent++;
    } else if (starts_ci(s, n, "MAIL ")) {
        c->last_cmd = CMD_MAIL;
        c->mail_sent = 1;
    } else if (starts_ci(s, n, "DATA")) {
        c->last_cmd = CMD_DATA;
    } else if (starts_ci(s, n, "AUTH ")) {
        c->last_cmd = CMD_AUTH;
        c->sent_auth = 1;
    } else {
        /* includes SASL continuation lines: not inspected */
        c->last_cmd = CMD_OTHER;
    }
}

static void capture_in_line(struct capture *c, const char *s, size_t n)
{
    while (n > 0 && (s[n - 1] == '\r' || s[n - 1] == '\n'))
        n--;
    if (n < 3 || !isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1])
        || !isdigit((unsigned char)s[2]))
        return;
    int code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
    int final = n == 3 || s[3] != '-';
    const char *text = n > 4 ? s + 4 : "";
    size_t tlen = n > 4 ? n - 4 : 0;

    if (code >= 400 && c->fail_code == 0) {
        c->fail_code = code;
        c->fail_in_message = c->mail_sent;
        copy_text(c->fail_text, sizeof c->fail_text, text, tlen);
    }
    if (!final)
        return;
    if (c->post_data) {
        c->post_data = 0;
        if (c->final_code == 0) {
            c->final_code = code;
            copy_text(c->final_text, sizeof c->final_text, text, tlen);
        }
    } else if (c->last_cmd == CMD_DATA && code == 354) {
        c->post_data = 1;
    } else if (c->last_cmd == CMD_RCPT && c->rcpt_codes && c->nrcpt_sent > 0
               && c->nrcpt_sent <= c->nrcpts
               && c->rcpt_codes[c->nrcpt_sent - 1] == 0) {
        c->rcpt_codes[c->nrcpt_sent - 1] = code;
    }
}

static int debug_cb(CURL *h, curl_infotype type, char *data, size_t size, void *ud)
{
    (void)h;
    struct capture *c = ud;
    if (type == CURLINFO_HEADER_OUT) {
        capture_out(c, data, size);
    } else if (type == CURLINFO_HEADER_IN) {
        /* libcurl hands us one line at a time; split anyway */
        size_t i = 0;
        while (i < size) {
            size_t j = i;
            while (j < size && data[j] != '\n')
                j++;
            size_t len = j - i;
            if (len > RELAY_MAX_LINE)
                len = RELAY_MAX_LINE;
            capture_in_line(c, data + i, len);
            i = j + 1;
        }
    }
    return 0;
}

/* ---------- curl setup shared by send and verify ---------- */

static int set_common(struct relay *r, CURL *h, struct capture *cap, char *errbuf,
                      const char *user, const char *pass)
{
    CURLcode e = CURLE_OK;
#define SET(opt, val) do { if (e == CURLE_OK) e = curl_easy_setopt(h, opt, val); } while (0)
    SET(CURLOPT_URL, r->url);
    SET(CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    SET(CURLOPT_USE_SSL, (long)(r->tls_none ? CURLUSESSL_NONE : CURLUSESSL_ALL));
    if (r->tls_ca)
        SET(CURLOPT_CAINFO, r->tls_ca);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_CONNECTTIMEOUT, r->timeout);
    /* a stalled upstream (no byte moving for `timeout` seconds) is dropped;
     * the overall cap is set per job from the message size */
    SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
    SET(CURLOPT_LOW_SPEED_TIME, r->timeout);
    /* Also bounds the wait for QUIT's reply when a stalled connection is
     * cleaned up (default 120 s would hold a worker that long). */
    SET(CURLOPT_SERVER_RESPONSE_TIMEOUT, r->timeout);
    SET(CURLOPT_ERRORBUFFER, errbuf);
    SET(CURLOPT_VERBOSE, 1L);
    SET(CURLOPT_DEBUGFUNCTION, debug_cb);
    SET(CURLOPT_DEBUGDATA, cap);
    if (user) {
        SET(CURLOPT_USERNAME, user);
        SET(CURLOPT_PASSWORD, pass ? pass : "");
    } else {
        SET(CURLOPT_USERNAME, (char *)NULL);
        SET(CURLOPT_PASSWORD, (char *)NULL);
    }
#undef SET
    if (e != CURLE_OK) {
        log_error("relay: curl_easy_setopt: %s", curl_easy_strerror(e));
        return -1;
    }
    return 0;
}

/* ---------- sending ---------- */

struct upload {
    const char *seg[2];
    size_t len[2];
    int i;
    size_t off;
};

static size_t read_cb(char *buf, size_t size, size_t nitems, void *ud)
{
    struct upload *u = ud;
    size_t room = size * nitems, out = 0;
    while (out < room && u->i < 2) {
        size_t left = u->len[u->i] - u->off;
        if (left == 0) {
            u->i++;
            u->off = 0;
            continue;
        }
        size_t k = left < room - out ? left : room - out;
        memcpy(buf + out, u->seg[u->i] + u->off, k);
        u->off += k;
        out += k;
    }
    return out;
}

static void set_text(struct relay_result *res, int code, const char *fmt, const char *arg)
{
    res->code = code;
    snprintf(res->text, sizeof res->text, fmt, arg);
}

static void worker_reset_handle(struct worker *w)
{
    curl_easy_cleanup(w->h);
    w->h = curl_easy_init();    /* NULL is handled at the next job */
}

static void smtp_send(struct worker *w, struct rjob *j)
{
    struct relay *r = w->r;
    const struct relay_job *job = &j->job;
    struct relay_result *res = &j->res;
    struct curl_slist *rcpts = NULL;
    char path[RELAY_MAX_LINE + 3];
    struct capture cap;
    memset(&cap, 0, sizeof cap);
    cap.rcpt_codes = res->rcpt_codes;
    cap.nrcpts = job->nrcpts;

    if (!w->h && !(w->h = curl_easy_init())) {
        set_text(res, 451, "%s", "4.3.0 upstream unavailable: out of memory");
        return;
    }
    for (size_t i = 0; i < job->nrcpts; i++) {
        snprintf(path, sizeof path, "<%s>", job->rcpts[i]);
        struct curl_slist *n = curl_slist_append(rcpts, path);
        if (!n) {
            curl_slist_free_all(rcpts);
            set_text(res, 451, "%s", "4.3.0 out of memory");
            return;
        }
        rcpts = n;
    }
    snprintf(path, sizeof path, "<%s>", job->mail_from ? job->mail_from : "");

    struct upload up = { .seg = { job->prefix ? job->prefix : "", job->data },
                         .len = { job->prefix ? strlen(job->prefix) : 0, job->len } };
    curl_off_t total = (curl_off_t)(up.len[0] + up.len[1]);
    const char *user = job->username ? job->username : r->username;
    const char *pass = job->username ? job->password : r->password;
    /* overall cap: the base timeout plus one second per 64 KiB, so large
     * messages on slow links are not cut off (stalls are caught earlier) */
    long cap_s = r->timeout + (long)(total / 65536);

    w->errbuf[0] = '\0';
    CURLcode e = CURLE_OK;
    if (set_common(r, w->h, &cap, w->errbuf, user, pass) < 0)
        e = CURLE_FAILED_INIT;
#define SET(opt, val) do { if (e == CURLE_OK) e = curl_easy_setopt(w->h, opt, val); } while (0)
    SET(CURLOPT_MAIL_FROM, path);
    SET(CURLOPT_MAIL_RCPT, rcpts);
    SET(CURLOPT_MAIL_RCPT_ALLLOWFAILS, 1L);
    SET(CURLOPT_UPLOAD, 1L);
    SET(CURLOPT_READFUNCTION, read_cb);
    SET(CURLOPT_READDATA, &up);
    SET(CURLOPT_INFILESIZE_LARGE, total);
    SET(CURLOPT_TIMEOUT, cap_s);
#undef SET
    if (e == CURLE_OK)
        e = curl_easy_perform(w->h);

    /* the slist and upload state die here: do not leave them in the handle */
    curl_easy_setopt(w->h, CURLOPT_MAIL_RCPT, (struct curl_slist *)NULL);
    curl_easy_setopt(w->h, CURLOPT_READDATA, (void *)NULL);
    curl_easy_setopt(w->h, CURLOPT_DEBUGDATA, (void *)NULL);
    curl_slist_free_all(rcpts);

    if (e == CURLE_OK) {
        res->ok = 1;
        if (cap.final_code >= 200 && cap.final_code < 300)
            set_text(res, cap.final_code, "%s", cap.final_text);
        else
            set_text(res, 250, "%s", "2.0.0 Ok");
        if (cap.fail_code)
            log_warn("relay: some recipients refused upstream: %d %s",
                     cap.fail_code, cap.fail_text);
        return;
    }
    if (cap.fail_code && cap.fail_in_message && cap.fail_code != 421) {
        /* the upstream's own verdict on this message: pass it on */
        res->code = cap.fail_code;
        snprintf(res->text, sizeof res->text, "%s", cap.fail_text);
    } else if (cap.fail_code) {
        /* refused before MAIL (greeting, STARTTLS, AUTH) or 421: that is
         * about the connection, not the message; the client should retry */
        res->code = 451;
        snprintf(res->text, sizeof res->text, "4.4.1 upstream unavailable: %d %.400s",
                 cap.fail_code, cap.fail_text);
    } else {
        set_text(res, 451, "4.4.1 upstream unavailable: %s",
                 w->errbuf[0] ? w->errbuf : curl_easy_strerror(e));
    }
    log_warn("relay: upstream delivery failed (curl %d): %d %s", (int)e,
             res->code, res->text);
    /* a broken or half-known connection must not carry the next job */
    worker_reset_handle(w);
}

/* ---------- maildir ---------- */

static int mkdir_p(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0700) < 0 && errno != EEXIST)
                return -1;
            *p = c;
            if (c == '\0')
                break;
        }
    }
    return 0;
}

static int maildir_dirs(const char *md)
{
    static const char *const sub[] = { "tmp", "new", "cur" };
    char p[PATH_MAX];
    if (mkdir_p(md) < 0)
        return -1;
    for (size_t i = 0; i < 3; i++) {
        if (snprintf(p, sizeof p, "%s/%s", md, sub[i]) >= (int)sizeof p) {
            errno = ENAMETOOLONG;
            return -1;
        }
        if (mkdir(p, 0700) < 0 && errno != EEXIST)
            return -1;
    }
    return 0;
}

/* One envelope header line; CR/LF in the address would forge headers. */
static int write_env(int fd, const char *name, const char *addr)
{
    char line[RELAY_MAX_LINE + 64];
    int n = snprintf(line, sizeof line, "%s: <%s>\r\n", name, addr ? addr : "");
    if (n < 0 || n >= (int)sizeof line) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (int i = 0; i < n - 2; i++)
        if (line[i] == '\r' || line[i] == '\n')
            line[i] = ' ';
    return sysutil_write_all(fd, line, (size_t)n);
}

static int fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (fsync(fd) < 0) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    return close(fd);
}

static void maildir_deliver(struct relay *r, struct rjob *j)
{
    const struct relay_job *job = &j->job;
    char name[512], tmp[PATH_MAX], dst[PATH_MAX], newdir[PATH_MAX];
    unsigned long ctr;
    const char *step = "mkdir";
    int fd = -1, err;

    pthread_mutex_lock(&r->mu);
    ctr = ++r->counter;
    pthread_mutex_unlock(&r->mu);
    snprintf(name, sizeof name, "%lld.%ld_%ld_%lu.%s", (long long)time(NULL),
             (long)getpid(), (long)gettid(), ctr, r->host);
    if (snprintf(tmp, sizeof tmp, "%s/tmp/%s", r->maildir, name) >= (int)sizeof tmp
        || snprintf(dst, sizeof dst, "%s/new/%s", r->maildir, name) >= (int)sizeof dst
        || snprintf(newdir, sizeof newdir, "%s/new", r->maildir) >= (int)sizeof newdir) {
        errno = ENAMETOOLONG;
        goto fail;
    }
    if (maildir_dirs(r->maildir) < 0)
        goto fail;
    step = "create";
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        goto fail_nounlink;
    step = "write";
    if (write_env(fd, "X-Untild-Envelope-From", job->mail_from) < 0)
        goto fail;
    for (size_t i = 0; i < job->nrcpts; i++)
        if (write_env(fd, "X-Untild-Envelope-To", job->rcpts[i]) < 0)
            goto fail;
    if (job->prefix && sysutil_write_all(fd, job->prefix, strlen(job->prefix)) < 0)
        goto fail;
    if (sysutil_write_all(fd, job->data, job->len) < 0)
        goto fail;
    step = "fsync";
    if (fsync(fd) < 0)
        goto fail;
    step = "close";
    int c = close(fd);
    fd = -1;
    if (c < 0)
        goto fail;
    step = "rename";
    if (rename(tmp, dst) < 0)
        goto fail;
    step = "fsync new/";
    if (fsync_dir(newdir) < 0)
        goto fail_nounlink;     /* the file is in new/ already */

    j->res.ok = 1;
    set_text(&j->res, 250, "%s", "2.0.0 Delivered to maildir");
    for (size_t i = 0; i < job->nrcpts; i++)
        j->res.rcpt_codes[i] = 250;
    return;

fail:
    err = errno;
    if (fd >= 0)
        close(fd);
    if (strcmp(step, "mkdir") != 0)
        unlink(tmp);
    errno = err;
fail_nounlink:
    err = errno;
    log_error("relay: maildir delivery to %s failed (%s): %s", r->maildir, step,
              strerror(err));
    j->res.code = 451;
    snprintf(j->res.text, sizeof j->res.text, "4.3.0 maildir delivery failed: %s",
             strerror(err));
}

/* ---------- verify ---------- */

static size_t discard_cb(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

static int verify(struct relay *r, const char *user, const char *pass)
{
    if (!r->url)
        return -1;
    char errbuf[CURL_ERROR_SIZE] = "";
    struct capture cap;
    memset(&cap, 0, sizeof cap);
    CURL *h = curl_easy_init();
    if (!h)
        return -1;
    CURLcode e = CURLE_OK;
    if (set_common(r, h, &cap, errbuf, user ? user : "", pass) < 0)
        e = CURLE_FAILED_INIT;
    /* NOOP: connect, (STARTTLS), AUTH, then a harmless command */
    if (e == CURLE_OK)
        e = curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "NOOP");
    if (e == CURLE_OK)
        e = curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard_cb);
    if (e == CURLE_OK)
        e = curl_easy_setopt(h, CURLOPT_TIMEOUT, r->timeout);
    if (e == CURLE_OK)
        e = curl_easy_perform(h);
    curl_easy_cleanup(h);

    if (e == CURLE_OK) {
        if (cap.sent_auth)
            return 1;
        /* libcurl skips AUTH when the server offers none: that proves
         * nothing about the password, so refuse */
        log_warn("relay: upstream offered no AUTH; cannot verify credentials");
        return 0;
    }
    if (e == CURLE_LOGIN_DENIED || (cap.sent_auth && cap.fail_code >= 500))
        return 0;
    log_warn("relay: credential check: upstream unreachable: %s",
             errbuf[0] ? errbuf : curl_easy_strerror(e));
    return -1;
}

/* ---------- pool ---------- */

static void rjob_free(struct rjob *j)
{
    free(j->res.rcpt_codes);
    free(j->loaded);
    free(j->vuser);
    wipe_free(j->vpass);
    free(j);
}

/* Runs on the loop thread. */
static void rjob_deliver(void *arg)
{
    struct rjob *j = arg;
    if (j->kind == RJ_SEND)
        j->done(j->arg, &j->res);
    else
        j->auth_done(j->arg, j->verdict);
    rjob_free(j);
}

static int job_wants_dsn(const struct relay_job *job)
{
    if (smtp_dsn_wanted(job->mail_params))
        return 1;
    for (size_t i = 0; job->rcpt_params && i < job->nrcpts; i++)
        if (smtp_dsn_wanted(job->rcpt_params[i]))
            return 1;
    return 0;
}

/* A message with DSN parameters: its own connection (libcurl connects,
 * secures and authenticates; smtp_dsn.c speaks the transaction). */
static void smtp_send_dsn(struct worker *w, struct rjob *j)
{
    struct relay *r = w->r;
    struct capture cap;
    char errbuf[CURL_ERROR_SIZE] = "";
    CURL *h = curl_easy_init();
    memset(&cap, 0, sizeof cap);
    if (!h) {
        set_text(&j->res, 451, "%s", "4.3.0 out of memory");
        return;
    }
    const char *user = j->job.username ? j->job.username : r->username;
    const char *pass = j->job.username ? j->job.password : r->password;
    if (set_common(r, h, &cap, errbuf, user, pass) < 0)
        set_text(&j->res, 451, "%s", "4.3.0 cannot set up the upstream connection");
    else
        smtp_dsn_send(h, &j->job, r->timeout, &j->res);
    if (!j->res.ok)
        log_warn("relay: upstream delivery (DSN) failed: %d %s", j->res.code, j->res.text);
    curl_easy_cleanup(h);
}

static void run_job(struct worker *w, struct rjob *j)
{
    struct relay *r = w->r;
    if (j->kind == RJ_VERIFY) {
        j->verdict = verify(r, j->vuser, j->vpass);
        return;
    }
    if (j->job.load) {
        size_t n = 0;
        if (j->job.load(j->job.load_arg, &j->loaded, &n) < 0) {
            set_text(&j->res, 451, "%s", "4.3.0 cannot read the message to send");
            for (size_t i = 0; i < j->job.nrcpts; i++)
                j->res.rcpt_codes[i] = 451;
            return;
        }
        j->job.data = j->loaded;
        j->job.len = n;
    }
    if (r->url && job_wants_dsn(&j->job))
        smtp_send_dsn(w, j);
    else if (r->url)
        smtp_send(w, j);
    else
        maildir_deliver(r, j);
    /* whoever did not get an answer of their own shares the message's fate:
     * a recipient accepted at RCPT is not delivered if DATA failed */
    for (size_t i = 0; i < j->job.nrcpts; i++) {
        int *c = &j->res.rcpt_codes[i];
        if (*c == 0 || (!j->res.ok && *c < 400))
            *c = j->res.code;
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    sysutil_below_loop();
    struct relay *r = w->r;
    for (;;) {
        while (sem_wait(&r->work) < 0 && errno == EINTR)
            ;
        pthread_mutex_lock(&r->mu);
        if (r->stopping) {
            pthread_mutex_unlock(&r->mu);
            break;
        }
        struct rjob *j = r->head;
        if (!j) {
            pthread_mutex_unlock(&r->mu);
            continue;
        }
        r->head = j->next;
        if (!r->head)
            r->tail = NULL;
        pthread_mutex_unlock(&r->mu);

        run_job(w, j);
        if (loop_post(r->loop, rjob_deliver, j) < 0) {
            /* cannot reach the loop thread: the callback is lost; say so */
            log_error("relay: loop_post failed; dropping a relay result");
            rjob_free(j);
        }
    }
    return NULL;
}

static char *dup_opt(const char *s, int *bad)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *bad = 1;
    return d;
}

/* libcurl takes the URL path as the EHLO name: give it ours if the URL has
 * no path and the host name is plain. */
static char *make_url(const char *url, const char *host)
{
    const char *p = strstr(url, "://");
    int plain = host && *host;
    for (const char *h = host; plain && *h; h++)
        if (!isalnum((unsigned char)*h) && *h != '.' && *h != '-')
            plain = 0;
    if (!p || strchr(p + 3, '/') || !plain)
        return strdup(url);
    char *u = NULL;
    if (asprintf(&u, "%s/%s", url, host) < 0)
        return NULL;
    return u;
}

static void relay_destroy(struct relay *r)
{
    free(r->url);
    free(r->maildir);
    free(r->tls_ca);
    free(r->username);
    wipe_free(r->password);
    free(r->workers);
    pthread_mutex_destroy(&r->mu);
    sem_destroy(&r->work);
    free(r);
}

struct relay *relay_new(const struct config *c, struct loop *l, int nworkers)
{
    if (!c || !l) {
        errno = EINVAL;
        return NULL;
    }
    if (nworkers <= 0)
        nworkers = c->upstream_connections > 0 ? c->upstream_connections : 1;
    if (nworkers > RELAY_MAX_WORKERS)
        nworkers = RELAY_MAX_WORKERS;

    struct relay *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    pthread_mutex_init(&r->mu, NULL);
    sem_init(&r->work, 0, 0);
    r->loop = l;
    r->tls_none = c->upstream_tls == TLS_NONE;
    r->timeout = c->upstream_timeout > 0 ? c->upstream_timeout : 120;

    /* the host part of maildir names: '/' and ':' are not allowed there */
    char hn[256] = "localhost";
    if (c->hostname)
        snprintf(hn, sizeof hn, "%s", c->hostname);
    else if (gethostname(hn, sizeof hn - 1) < 0)
        snprintf(hn, sizeof hn, "localhost");
    hn[sizeof hn - 1] = '\0';
    for (size_t i = 0, o = 0; hn[i] && o + 1 < sizeof r->host; i++)
        r->host[o++] = (hn[i] == '/' || hn[i] == ':') ? '_' : hn[i];

    int bad = 0;
    if (c->upstream_url) {
        r->url = make_url(c->upstream_url, c->hostname);
        if (!r->url)
            bad = 1;
    }
    r->maildir = dup_opt(c->maildir ? c->maildir : "./var/outbox", &bad);
    r->tls_ca = dup_opt(c->upstream_tls_ca, &bad);
    r->username = dup_opt(c->upstream_username, &bad);
    if (bad)
        goto fail;
    if (r->url && r->username) {
        int failed;
        r->password = secret_load_optional(c->upstream_password_file, c->upstream_password_command,
                                           "relay", &failed);
        if (failed)
            goto fail;
    }
    if (!r->url && maildir_dirs(r->maildir) < 0) {
        log_error("relay: cannot create maildir %s: %s", r->maildir, strerror(errno));
        goto fail;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("relay: curl_global_init failed");
        goto fail;
    }

    r->workers = calloc((size_t)nworkers, sizeof *r->workers);
    if (!r->workers) {
        curl_global_cleanup();
        goto fail;
    }
    r->nworkers = nworkers;
    for (int i = 0; i < nworkers; i++) {
        struct worker *w = &r->workers[i];
        w->r = r;
        w->h = curl_easy_init();
        if (!w->h || pthread_create(&w->tid, NULL, worker_main, w) != 0) {
            log_error("relay: cannot start worker %d", i);
            relay_free(r);
            return NULL;
        }
        w->started = 1;
    }
    return r;

fail:
    relay_destroy(r);
    return NULL;
}

void relay_free(struct relay *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stopping = 1;
    struct rjob *left = r->head;
    r->head = r->tail = NULL;
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < r->nworkers; i++)
        sem_post(&r->work);

    for (int i = 0; i < r->nworkers; i++) {
        struct worker *w = &r->workers[i];
        if (w->started)
            pthread_join(w->tid, NULL);
        if (w->h)
            curl_easy_cleanup(w->h);   /* sends QUIT on a kept connection */
    }
    /* jobs never started: answer them now (we are on the loop thread) so
     * every caller hears back exactly once */
    while (left) {
        struct rjob *j = left;
        left = j->next;
        if (j->kind == RJ_SEND) {
            set_text(&j->res, 451, "%s", "4.3.2 shutting down");
            for (size_t i = 0; i < j->job.nrcpts; i++)
                j->res.rcpt_codes[i] = 451;
        } else {
            j->verdict = -1;
        }
        rjob_deliver(j);
    }
    if (r->workers)
        curl_global_cleanup();
    relay_destroy(r);
}

static int enqueue(struct relay *r, struct rjob *j)
{
    pthread_mutex_lock(&r->mu);
    if (r->stopping) {
        pthread_mutex_unlock(&r->mu);
        return -1;
    }
    if (r->tail)
        r->tail->next = j;
    else
        r->head = j;
    r->tail = j;
    pthread_mutex_unlock(&r->mu);
    sem_post(&r->work);
    return 0;
}

int relay_submit(struct relay *r, const struct relay_job *job,
                 relay_done_fn done, void *arg)
{
    if (!r || !job || !done || (job->nrcpts && !job->rcpts) || (job->len && !job->data && !job->load))
        return -1;
    struct rjob *j = calloc(1, sizeof *j);
    if (!j)
        return -1;
    j->kind = RJ_SEND;
    j->job = *job;
    if (!j->job.data)
        j->job.data = "";
    j->done = done;
    j->arg = arg;
    j->res.rcpt_codes = calloc(job->nrcpts ? job->nrcpts : 1, sizeof(int));
    if (!j->res.rcpt_codes || enqueue(r, j) < 0) {
        rjob_free(j);
        return -1;
    }
    return 0;
}

int relay_verify_async(struct relay *r, const char *user, const char *pass,
                       relay_auth_fn done, void *arg)
{
    if (!r || !user || !done)
        return -1;
    struct rjob *j = calloc(1, sizeof *j);
    if (!j)
        return -1;
    j->kind = RJ_VERIFY;
    j->auth_done = done;
    j->arg = arg;
    j->vuser = strdup(user);
    j->vpass = strdup(pass ? pass : "");
    if (!j->vuser || !j->vpass || enqueue(r, j) < 0) {
        rjob_free(j);
        return -1;
    }
    return 0;
}
