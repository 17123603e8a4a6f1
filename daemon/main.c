/* main.c - untild: start-up, configuration, signals, privilege drop, and
 * the event loop.
 *
 * untild [-c FILE] [-t] [-v] [--test-clock]
 *   -c FILE       configuration (default /etc/untild/untild.conf)
 *   -t            check the configuration and window files, print every
 *                 error as FILE:LINE: message, exit 0 (good) or 1
 *   -v            debug logging
 *   --test-clock  let `untilctl debug clock` move the daemon's clock (tests)
 * Stays in the foreground and logs to stderr (journald). SIGHUP reloads the
 * configuration and window files (a bad reload keeps the old ones);
 * SIGTERM/SIGINT stop it. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <curl/curl.h>
#include <systemd/sd-daemon.h>
#include "untild/config.h"
#include "untild/control.h"
#include "untild/daemon.h"
#include "untild/dav_xml.h"
#include "untild/followup.h"
#include "untild/digest.h"
#include "untild/followup_cal.h"
#include "untild/gate.h"
#include "untild/holder.h"
#include "untild/imap_watch.h"
#include "untild/caldav.h"
#include "untild/http_api.h"
#include "untild/events.h"
#include "untild/webhook.h"
#include "untild/policy_service.h"
#include "untild/log.h"
#include "untild/loop.h"
#include "untild/relay.h"
#include "untild/release.h"
#include "untild/smtp_server.h"
#include "untild/spool.h"
#include "untild/store.h"
#include "untild/store_pg.h"
#include "untild/windows.h"
#include "untild/winload.h"

static void print_errors(const struct config_errors *e, int to_log)
{
    for (size_t i = 0; i < e->n; i++) {
        if (to_log)
            log_error("%s", e->lines[i]);
        else
            fprintf(stderr, "%s\n", e->lines[i]);
    }
}

static void windows_changed(struct untild *u)
{
    followup_kick(u->followup);
}

/* A reload keeps the old configuration and index unless both new ones
 * loaded without an error. Returns 0 (use them) or -1 (freed). */
static int reload_check(struct config *c, struct windows *ix, struct config_errors *e)
{
    if (c && ix && !e->n)
        return 0;
    print_errors(e, 1);
    log_error("reload: configuration has errors; keeping the old one");
    if (ix)
        windows_free(ix);
    if (c)
        config_free(c);
    return -1;
}

static void reload_apply(struct untild *u, struct config *c, struct windows *ix)
{
    /* Other modules may still hold pointers into the old config. */
    if (u->nretired == sizeof u->retired / sizeof u->retired[0]) {
        config_free(u->retired[0]);
        memmove(u->retired, u->retired + 1, (u->nretired - 1) * sizeof u->retired[0]);
        u->nretired--;
    }
    u->retired[u->nretired++] = u->cfg;
    u->cfg = c;
    {   /* the database thread keeps its own copy of [store] */
        const struct config *old = u->retired[u->nretired - 1];
        if (!old->store_url != !c->store_url ||
            (c->store_url && (strcmp(old->store_url, c->store_url) || strcmp(old->store_node, c->store_node))))
            log_warn("reload: [store] changes take effect at the next restart");
        if (http_api_config_changed(old, c))
            log_warn("reload: [http] changes take effect at the next restart");
        if (webhook_config_changed(old, c))
            log_warn("reload: [webhook] changes take effect at the next restart");
    }
    untild_policy_cfg(c, &u->pcfg);
    winload_free_later(u->ix);
    u->ix = ix;
    if (u->smtp)
        smtp_server_reconfigure(u->smtp, c);
    /* A watcher section added by the reload starts now (start does
     * nothing, and returns NULL, while none is configured). */
    int werr = 0;
    if (u->imap)
        imap_watch_reconfigure(u->imap);
    else if (!(u->imap = imap_watch_start(u, &werr)) && werr < 0)
        log_error("reload: cannot start the IMAP watcher");
    werr = 0;
    if (u->caldav)
        caldav_reconfigure(u->caldav);
    else if (!(u->caldav = caldav_start(u, &werr)) && werr < 0)
        log_error("reload: cannot start the CalDAV watcher");
    policy_service_reconfigure(u->psvc);
    release_kick(u->release, 1);
    policy_service_kick(u->psvc, 1);
    followup_kick(u->followup);
    digest_kick(u->digest);
    log_info("reload: %zu window(s) loaded", windows_count(ix));
    untild_prune(u);    /* audit_retention may have changed */
}

/* `untilctl reload`: the answer says whether it worked, so this one waits
 * (on the loop: the batched state lookups keep it to the parse, ~2 s per
 * million windows). SIGHUP uses reload_background. */
static int reload(struct untild *u)
{
    struct config_errors e = { 0 };
    struct config *c = config_load(u->cfg->path, &e);
    struct windows *ix = c ? untild_load_windows(u, c, &e) : NULL;
    int rc = reload_check(c, ix, &e);
    config_errors_free(&e);
    if (rc == 0)
        reload_apply(u, c, ix);
    return rc;
}

static int reload_again;   /* a SIGHUP came while a build was running */
static void reload_background(struct untild *u);

static void reload_done(struct untild *u, struct config *c, struct windows *ix, struct config_errors *e)
{
    int64_t t0 = loop_now_ms();
    if (reload_check(c, ix, e) == 0) {
        reload_apply(u, c, ix);
        log_debug("reload: swapped in on the loop in %lld ms", (long long)(loop_now_ms() - t0));
    }
    sd_notify(0, "READY=1");
    if (reload_again) {
        reload_again = 0;
        reload_background(u);
    }
}

/* SIGHUP: the configuration file is read here (small); the window files
 * are read and indexed on a worker thread (winload.c) and swapped in when
 * done, so the loop keeps serving meanwhile. */
static void reload_background(struct untild *u)
{
    if (winload_busy()) {
        reload_again = 1;
        log_info("SIGHUP: a reload is running; another follows when it is done");
        return;
    }
    struct config_errors e = { 0 };
    struct config *c = config_load(u->cfg->path, &e);
    if (!c) {
        reload_check(NULL, NULL, &e);
        config_errors_free(&e);
        return;
    }
    config_errors_free(&e);
    sd_notify(0, "RELOADING=1");
    if (winload_start(u, c, reload_done) < 0) {
        config_free(c);
        reload(u);   /* no thread: the old way */
        sd_notify(0, "READY=1");
    }
}

static void on_signal(struct loop *l, int fd, int ev, void *arg)
{
    struct untild *u = arg;
    struct signalfd_siginfo si;
    (void)ev;
    while (read(fd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGHUP) {
            reload_background(u);
        } else {
            log_info("signal %u: stopping", si.ssi_signo);
            sd_notify(0, "STOPPING=1");
            loop_stop(l);
        }
    }
}

static void on_watchdog(struct loop *l, uint64_t id, void *arg)
{
    struct untild *u = arg;
    uint64_t usec = 0;
    (void)id;
    sd_notifyf(0, "WATCHDOG=1\nSTATUS=%zu window(s), %zu held, %zu session(s)", windows_count(u->ix),
               release_count(u->release), smtp_server_sessions(u->smtp));
    if (sd_watchdog_enabled(0, &usec) > 0)
        loop_timer(l, (int64_t)(usec / 2000), on_watchdog, u);
    else
        loop_timer(l, 10000, on_watchdog, u);
}

static int drop_privileges(const char *user)
{
    struct passwd *pw;
    if (geteuid() != 0)
        return 0;
    if (!user) {
        log_warn("running as root: set [daemon] user to drop privileges");
        return 0;
    }
    if (!(pw = getpwnam(user))) {
        log_fatal("[daemon] user %s does not exist", user);
        return -1;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
        log_fatal("cannot drop privileges to %s: %s", user, strerror(errno));
        return -1;
    }
    if (setuid(0) == 0) {
        log_fatal("privileges were not dropped");
        return -1;
    }
    log_info("running as %s", user);
    return 0;
}

static int mkdirs(const char *path, mode_t mode)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, mode) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(tmp, mode) < 0 && errno != EEXIST ? -1 : 0;
}

/* Started as root with [daemon] user: make the state directory now, while
 * we still may, and hand it to that user (as systemd's StateDirectory=
 * does), so the unprivileged daemon can write its spool and database. */
static int prepare_state_dir(const struct config *c)
{
    struct passwd *pw;
    struct stat st;
    if (geteuid() != 0 || !c->user)
        return 0;
    if (!(pw = getpwnam(c->user))) {
        log_fatal("[daemon] user %s does not exist", c->user);
        return -1;
    }
    if (mkdirs(c->state_dir, 0700) < 0 || stat(c->state_dir, &st) < 0) {
        log_fatal("cannot create state_dir %s: %s", c->state_dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        log_fatal("state_dir %s is not a directory", c->state_dir);
        return -1;
    }
    if ((st.st_uid != pw->pw_uid || st.st_gid != pw->pw_gid) &&
        chown(c->state_dir, pw->pw_uid, pw->pw_gid) < 0) {
        log_fatal("cannot give state_dir %s to %s: %s", c->state_dir, c->user, strerror(errno));
        return -1;
    }
    return 0;
}

/* One daemon per state_dir, decided before anything else is touched: a
 * second daemon must not replace (or, on its way out, remove) the first
 * one's sockets. The lock is held until the process exits. Returns the fd,
 * or -1 (logged). The file keeps the holder's pid, for the message. */
static int lock_state_dir(const struct config *c)
{
    char path[4096], pid[32];
    if ((size_t)snprintf(path, sizeof path, "%s/untild.lock", c->state_dir) >= sizeof path) {
        log_fatal("state_dir path too long: %s", c->state_dir);
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        log_fatal("cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int busy = errno == EWOULDBLOCK;
        ssize_t n = busy ? pread(fd, pid, sizeof pid - 1, 0) : -1;
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        if (busy)
            log_fatal("another untild (pid %s) is running on state_dir %s; not starting",
                      pid[0] ? pid : "?", c->state_dir);
        else
            log_fatal("cannot lock %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    /* Started as root for [daemon] user: the user's next start must be
     * able to open it. */
    struct passwd *pw = geteuid() == 0 && c->user ? getpwnam(c->user) : NULL;
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if ((pw && fchown(fd, pw->pw_uid, pw->pw_gid) < 0) || ftruncate(fd, 0) < 0 ||
        pwrite(fd, pid, (size_t)n, 0) != n)
        log_warn("%s: %s (the lock holds all the same)", path, strerror(errno));
    return fd;
}

/* Where the control socket lives must be writable by whoever puts it in
 * place. Started as root for [daemon] user, a directory that is not the
 * user's cannot take the rename after the drop: then it is published
 * before the drop (connections still wait until the loop runs). */
static int publish_after_drop(const struct config *c)
{
    struct passwd *pw;
    struct stat st;
    char dir[4096];
    if (geteuid() != 0 || !c->user || !(pw = getpwnam(c->user)))
        return 1;
    snprintf(dir, sizeof dir, "%s", c->control_socket);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    return stat(dir, &st) == 0 && st.st_uid == pw->pw_uid;
}

#ifndef UNTILD_VERSION
#define UNTILD_VERSION "unknown"   /* the Makefile passes VERSION */
#endif

static void usage(FILE *f)
{
    fprintf(f,
        "usage: untild [-c FILE] [-t] [-v] [--test-clock]\n"
        "  -c FILE       read the configuration from FILE (default /etc/untild/untild.conf)\n"
        "  -t            check the configuration and window files, print every error\n"
        "                as FILE:LINE: message, and exit (nothing is started)\n"
        "  -v            verbose: log debug messages too\n"
        "  --test-clock  let an admin move the clock (untilctl debug clock); tests only\n"
        "  -h, --help    print this help and exit\n"
        "  --version     print the version and exit\n");
}

/* Notices: kept in the spool (release.c), or put into the rep's mailbox
 * by the IMAP watcher of the moment (a reload may replace it). */
static int queue_notice(void *arg, const char *rep, const char *to, const char *subject,
                        char *msg, size_t len)
{
    return release_notice(arg, rep, to, subject, msg, len);
}

static int append_notice(void *arg, const char *rep, const char *msg, size_t len)
{
    struct untild *u = arg;
    return u->imap ? imap_watch_append(u->imap, rep, msg, len) : -1;
}

/* The command line. Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, const char **path, int *check, struct untild *u)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-c") && i + 1 < argc)
            *path = argv[++i];
        else if (!strcmp(argv[i], "-t"))
            *check = 1;
        else if (!strcmp(argv[i], "-v"))
            log_set_level(ULOG_DEBUG);
        else if (!strcmp(argv[i], "--test-clock"))
            u->test_clock = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--version")) {
            printf("untild %s\n", UNTILD_VERSION);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    return -1;
}

/* untild -t: the configuration and the window files, then exit. */
static int check_only(struct untild *u, const char *path, struct config_errors *e)
{
    struct windows *ix = config_load_windows(u->cfg, untild_now(u), e);
    print_errors(e, 0);
    if (!e->n)
        printf("%s: configuration OK, %zu window(s)\n", path, ix ? windows_count(ix) : 0);
    int rc = e->n ? 1 : 0;
    if (!e->n && u->cfg->store_url && store_pg_check(u->cfg, stdout) < 0)
        rc = 1;
    windows_free(ix);
    config_errors_free(e);
    config_free(u->cfg);
    return rc;
}

/* The control socket's directory may not exist yet (quick start: ./var/).
 * 0755: reps must reach the socket; the socket itself is checked per verb. */
static void control_dir(const char *sock)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", sock);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (mkdirs(dir, 0755) < 0)
            log_warn("cannot create %s: %s", dir, strerror(errno));
    }
}

/* Notices, the watchers, the policy service and the HTTP API, once release runs.
 * Returns 0 or -1 (logged: start-up cannot go on). */
static int start_watchers(struct untild *u)
{
    u->notice_queue = queue_notice;
    u->notice_queue_arg = u->release;
    u->notice_append = append_notice;
    u->notice_append_arg = u;
    int err = 0;
    u->webhooks = webhook_start(u->cfg, u->store, u->loop, &err);
    if (err < 0) {
        log_fatal("cannot start the webhooks");
        return -1;
    }
    events_start(u);   /* before anything below can audit */
    if (!(u->followup = followup_new(u)) || !(u->digest = digest_new(u))) {
        log_fatal("cannot start follow-ups and the digest");
        return -1;
    }
    u->fucal = followup_cal_start(u);
    u->imap = imap_watch_start(u, &err);
    if (err < 0) {
        log_fatal("cannot start the IMAP watcher");
        return -1;
    }
    u->caldav = caldav_start(u, &err);
    if (err < 0) {
        log_fatal("cannot start the CalDAV watcher");
        return -1;
    }
    u->psvc = policy_service_start(u, &err);
    if (err < 0) {
        log_fatal("cannot start the policy service");
        return -1;
    }
    if (u->cfg->http_listen && !(u->http = http_api_start(u))) {
        log_fatal("cannot start the HTTP API ([http] listen %s)", u->cfg->http_listen);
        return -1;
    }
    return 0;
}

/* Shutdown in dependency order; also undoes a start-up that failed
 * half-way (every part may be NULL). */
static void stop_all(struct untild *u, int lockfd)
{
    http_api_stop(u->http);     /* first: its requests use everything below */
    u->http = NULL;
    policy_service_stop(u->psvc);
    caldav_stop(u->caldav);
    imap_watch_stop(u->imap);
    control_free(u->control);
    store_pg_stop(u->pg);    /* before release and the index: its results use them */
    u->pg = NULL;
    /* Relay first: queued jobs are answered (4xx) and running ones joined;
     * then the results they posted run while the sessions and the release
     * queue still exist. Callbacks that try to relay again see no relay. */
    /* Holds being written finish (their clients get the true answer),
     * and may still hand the allowed part to the relay. */
    gate_stop(u);                /* AUTH checks in progress answer their sessions */
    if (u->loop)
        loop_run_pending(u->loop);
    if (u->holder) {
        holder_free(u->holder);
        u->holder = NULL;
        if (u->loop)
            loop_run_pending(u->loop);
    }
    if (u->relay) {
        struct relay *r = u->relay;
        u->relay = NULL;
        relay_free(r);
        if (u->loop)
            loop_run_pending(u->loop);
    }
    smtp_server_free(u->smtp);
    u->notice_queue = NULL;
    followup_cal_stop(u->fucal);
    digest_free(u->digest);
    followup_free(u->followup);
    release_free(u->release);
    if (u->ix)
        windows_free(u->ix);
    if (u->spool)
        spool_close(u->spool);
    webhook_stop(u->webhooks);  /* its queue stays in the store */
    u->webhooks = NULL;
    if (u->store)
        store_close(u->store);
    loop_free(u->loop);
    for (size_t i = 0; i < u->nretired; i++)
        config_free(u->retired[i]);
    config_free(u->cfg);
    curl_global_cleanup();
    if (lockfd >= 0)
        close(lockfd);   /* last: the sockets are gone by now */
}

/* Block before threads start, so every thread inherits the mask and the
 * signals arrive only through the signalfd. */
static void block_signals(sigset_t *mask)
{
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(mask);
    sigaddset(mask, SIGHUP);
    sigaddset(mask, SIGTERM);
    sigaddset(mask, SIGINT);
    sigprocmask(SIG_BLOCK, mask, NULL);
}

/* Start-up's state: the database, the spool, the window index, the relay
 * and the held queue. The window files are read on a thread while the
 * spool is opened (winload.c); each held file is read once (spool_open_ex
 * hands its metadata to release_new_from). 0, or -1 (logged). */
static int open_state(struct untild *u, struct config_errors *e)
{
    struct spool_meta *held = NULL;
    size_t nheld = 0;
    int64_t t0 = loop_now_ms();
    struct winload_startup *ws = winload_startup_begin(u, u->cfg);
    if (!(u->store = store_open(u->cfg->state_dir)) ||
        !(u->spool = spool_open_ex(u->cfg->state_dir, &held, &nheld))) {
        log_fatal("cannot open the state in %s", u->cfg->state_dir);
        goto fail;
    }
    if (u->cfg->store_url && !(u->pg = store_pg_start(u))) {
        log_fatal("cannot start the shared store");
        goto fail;
    }
    if (!(u->holder = holder_new(u->spool, u->loop, 4))) {
        log_fatal("cannot start the spool writers");
        goto fail;
    }
    /* Test seam: simulate a full disk after N spool writes (--test-clock only). */
    if (u->test_clock && getenv("UNTILD_TEST_SPOOL_FAIL_AFTER"))
        spool_fail_after(u->spool, strtol(getenv("UNTILD_TEST_SPOOL_FAIL_AFTER"), NULL, 10), ENOSPC);
    log_debug("start-up: state database and spool opened in %lld ms (%zu held)",
              (long long)(loop_now_ms() - t0), nheld);
    t0 = loop_now_ms();
    u->ix = ws ? winload_startup_end(ws, e) : untild_load_windows(u, u->cfg, e);
    ws = NULL;
    if (!u->ix || e->n) {
        print_errors(e, 1);
        log_fatal("window files have errors; not starting");
        goto fail;
    }
    log_debug("start-up: window index ready %lld ms later", (long long)(loop_now_ms() - t0));
    if (!(u->relay = relay_new(u->cfg, u->loop, u->cfg->upstream_connections > 0 ? u->cfg->upstream_connections : 4))) {
        log_fatal("cannot start the relay");
        goto fail;
    }
    t0 = loop_now_ms();
    u->release = release_new_from(u, held, nheld);   /* takes the list */
    held = NULL;
    nheld = 0;
    if (!u->release)
        goto fail;
    log_debug("start-up: held queue built in %lld ms", (long long)(loop_now_ms() - t0));
    return 0;
fail:
    if (ws)             /* failed while the start-up build ran */
        windows_free(winload_startup_end(ws, e));
    for (size_t i = 0; i < nheld; i++)
        spool_meta_free(&held[i]);
    free(held);
    return -1;
}

int main(int argc, char **argv)
{
    const char *path = "/etc/untild/untild.conf";
    int check = 0, rc = 1, lockfd = -1;
    struct untild u = { 0 };
    struct config_errors e = { 0 };
    struct smtp_hooks hooks;

    if ((rc = parse_args(argc, argv, &path, &check, &u)) >= 0)
        return rc;
    rc = 1;
    u.reload = reload;
    u.windows_changed = windows_changed;

    if (!(u.cfg = config_load(path, &e))) {
        print_errors(&e, 0);
        if (!e.n)
            fprintf(stderr, "%s: cannot load configuration\n", path);
        config_errors_free(&e);
        return 1;
    }
    untild_policy_cfg(u.cfg, &u.pcfg);
    if (check)
        return check_only(&u, path, &e);

    sigset_t mask;
    block_signals(&mask);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    dav_xml_init();   /* libxml2's global state, before any CalDAV worker thread */
    /* The state directory and its lock come first: nothing (no socket
     * bound, replaced or removed) before we know we are the only daemon on
     * it. As root for [daemon] user it is made and handed to that user. */
    if (geteuid() == 0 && u.cfg->user) {
        if (prepare_state_dir(u.cfg) < 0)
            goto out;
    } else if (mkdirs(u.cfg->state_dir, 0700) < 0) {
        log_fatal("cannot create state_dir %s: %s", u.cfg->state_dir, strerror(errno));
        goto out;
    }
    if ((lockfd = lock_state_dir(u.cfg)) < 0)
        goto out;
    if (!(u.loop = loop_new()))
        goto out;
    gate_hooks(&u, &hooks);
    /* Bound now (a privileged port needs root), listening only once
     * everything is up: until then a client is refused, not kept waiting. */
    if (!(u.smtp = smtp_server_new(u.cfg, u.loop, &hooks)) || smtp_server_bind(u.smtp) < 0) {
        log_fatal("cannot start the SMTP listener");
        goto out;
    }
    /* The control socket is bound here too, while its directory may still
     * be root's (a root start with [daemon] user), under a temporary name:
     * it is renamed into place just before READY. */
    control_dir(u.cfg->control_socket);
    if (!(u.control = control_new(&u, u.cfg->control_socket)))
        goto out;
    int late = publish_after_drop(u.cfg);
    if (!late && control_publish(u.control) < 0)
        goto out;
    /* Listeners are bound: no client input is read before this drop. */
    if (drop_privileges(u.cfg->user) < 0)
        goto out;
    if (mkdirs(u.cfg->state_dir, 0700) < 0) {
        log_fatal("cannot create state_dir %s: %s", u.cfg->state_dir, strerror(errno));
        goto out;
    }
    if (open_state(&u, &e) < 0)
        goto out;
    if (start_watchers(&u) < 0)
        goto out;

    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0 || loop_fd(u.loop, sfd, LOOP_READ, on_signal, &u) < 0) {
        log_fatal("cannot set up signals: %s", strerror(errno));
        goto out;
    }
    untild_prune_start(&u);  /* now, then daily */
    /* Ready: the listeners, the control socket and READY=1 all mean the
     * same thing from here on. */
    if (smtp_server_listen(u.smtp) < 0 || (late && control_publish(u.control) < 0)) {
        log_fatal("cannot start listening");
        goto out;
    }
    log_info("untild ready: %zu window(s), %zu held message(s), upstream %s", windows_count(u.ix),
             release_count(u.release), u.cfg->upstream_url ? u.cfg->upstream_url : u.cfg->maildir);
    sd_notifyf(0, "READY=1\nSTATUS=%zu window(s), %zu held", windows_count(u.ix), release_count(u.release));
    on_watchdog(u.loop, 0, &u);
    loop_run(u.loop, NULL, NULL);
    close(sfd);
    rc = 0;
out:
    winload_cancel();   /* a reload still building: dropped */
    config_errors_free(&e);
    stop_all(&u, lockfd);
    return rc;
}
