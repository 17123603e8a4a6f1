/* test_config.c - untild.conf parsing, FILE:LINE errors, window files.
 * Every fixture is written into a fresh mkdtemp directory by the test. */
#include <check.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "untild/config.h"

static char tmp[256];   /* per test (fixture), realpath'd */

static void setup(void)
{
    char t[] = "/tmp/test_config.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(t));
    char real[PATH_MAX];
    ck_assert_ptr_nonnull(realpath(t, real));
    ck_assert_uint_lt(strlen(real), sizeof tmp);
    strcpy(tmp, real);
}

static int rm_one(const char *p, const struct stat *st, int flag,
                  struct FTW *f)
{
    (void)st; (void)flag; (void)f;
    return remove(p);
}

static void teardown(void)
{
    nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* tmp/name (directories created on the way), returned in a static slot. */
static const char *path_of(const char *name)
{
    static char bufs[8][PATH_MAX];
    static int i;
    char *b = bufs[i++ % 8];
    snprintf(b, PATH_MAX, "%s/%s", tmp, name);
    return b;
}

static const char *write_file(const char *name, const char *text, mode_t mode)
{
    const char *p = path_of(name);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", p);
    for (char *s = dir + strlen(tmp) + 1; (s = strchr(s, '/')) != NULL; s++) {
        *s = '\0';
        mkdir(dir, 0755);
        *s = '/';
    }
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(chmod(p, mode), 0);
    return p;
}

static struct config *load(const char *text, struct config_errors *e)
{
    return config_load(write_file("untild.conf", text, 0644), e);
}

static void dump(const struct config_errors *e)
{
    for (size_t i = 0; i < e->n; i++)
        fprintf(stderr, "  error: %s\n", e->lines[i]);
}

/* Is there an error "FILE:LINE: ...keyword..."? */
static int has_error(const struct config_errors *e, const char *file,
                     int line, const char *keyword)
{
    char prefix[PATH_MAX + 32];
    snprintf(prefix, sizeof prefix, "%s:%d: ", file, line);
    for (size_t i = 0; i < e->n; i++)
        if (strncmp(e->lines[i], prefix, strlen(prefix)) == 0 &&
            strstr(e->lines[i] + strlen(prefix), keyword) != NULL)
            return 1;
    return 0;
}

START_TEST(test_full_round_trip)
{
    write_file("users", "alice:x\n", 0640);
    write_file("cert.pem", "cert\n", 0644);
    write_file("key.pem", "key\n", 0600);
    write_file("up.pass", "secret\n", 0600);
    write_file("imap.pass", "secret\n", 0400);
    write_file("ca.pem", "ca\n", 0644);
    struct config_errors e = { 0 };
    struct config *c = load(
        "# full config\n"
        "[daemon]\n"
        "state_dir = /srv/untild          # spool\n"
        "control_socket = run/control.sock\n"
        "timezone = Europe/Berlin\n"
        "owner = rep@example.com\n"
        "admin_group = mailadm\n"
        "user = untild\n"
        "\n"
        "; smtp side\n"
        "[smtp]\n"
        "listen = 0.0.0.0:587, [::1]:10587\n"
        "listen_tls = 127.0.0.1:465\n"
        "auth = passwd:users\n"
        "tls_cert = cert.pem\n"
        "tls_key = key.pem\n"
        "max_message_size = 10m\n"
        "max_sessions = 50\n"
        "hostname = gate.example.com\n"
        "timeout_command = 60\n"
        "timeout_data = 120\n"
        "[upstream]\n"
        "url = smtps://smtp.example.com:465\n"
        "tls = required\n"
        "username = \"rep@example.com\"\n"
        "password_file = up.pass\n"
        "tls_ca = ca.pem\n"
        "connections = 4\n"
        "upstream_timeout = 30\n"
        "[policy]\n"
        "default_action = flag\n"
        "split_recipients = yes\n"
        "release_time = 08:30\n"
        "release_on_weekends = yes\n"
        "command_domain = cmd.example\n"
        "subaddress_delimiter = \"+-\"\n"
        "max_queue_lifetime = 2d\n"
        "[windows]\n"
        "files = windows.d/*.windows\n"
        "[notify]\n"
        "from = gate@example.com\n"
        "to = boss@example.com\n"
        "[policy_service]\n"
        "listen = unix:policy.sock\n"
        "postfix_config_dir = /etc/postfix\n"
        "[imap]\n"
        "url = imaps://imap.example.com\n"
        "username = rep@example.com\n"
        "password_file = imap.pass\n"
        "tls_ca = ca.pem\n"
        "sent_folders = Sent, Sent Items\n"
        "inbox = INBOX\n"
        "notice_folder = Untild\n"
        "later_folder = Contact later\n"
        "poll_interval = 30\n"
        "customer_reply_reopens = end-window\n"
        "[caldav]\n"
        "url = http://127.0.0.1:5232/rep/\n"
        "tls = none\n"
        "username = rep\n"
        "password_command = pass show caldav\n"
        "calendars = Work, Home\n"
        "action = hold\n"
        "windows_calendar = Do not contact\n"
        "poll_interval = 120\n"
        "proxy_listen = 127.0.0.1:5233\n", &e);
    dump(&e);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(e.n, 0);

    ck_assert_str_eq(c->path, path_of("untild.conf"));
    ck_assert_str_eq(c->state_dir, "/srv/untild");
    ck_assert_str_eq(c->control_socket, path_of("run/control.sock"));
    ck_assert_str_eq(c->timezone, "Europe/Berlin");
    ck_assert_str_eq(c->owner, "rep@example.com");
    ck_assert_str_eq(c->admin_group, "mailadm");
    ck_assert_str_eq(c->user, "untild");

    ck_assert_uint_eq(c->nlisten, 2);
    ck_assert_str_eq(c->listen[0], "0.0.0.0:587");
    ck_assert_str_eq(c->listen[1], "[::1]:10587");
    ck_assert_uint_eq(c->nlisten_tls, 1);
    ck_assert_str_eq(c->listen_tls[0], "127.0.0.1:465");
    ck_assert_int_eq(c->auth, AUTH_PASSWD);
    ck_assert_str_eq(c->passwd_file, path_of("users"));
    ck_assert_str_eq(c->tls_cert, path_of("cert.pem"));
    ck_assert_str_eq(c->tls_key, path_of("key.pem"));
    ck_assert_uint_eq(c->max_message_size, 10u << 20);
    ck_assert_int_eq(c->max_sessions, 50);
    ck_assert_str_eq(c->hostname, "gate.example.com");
    ck_assert_int_eq(c->timeout_command, 60);
    ck_assert_int_eq(c->timeout_data, 120);

    ck_assert_str_eq(c->upstream_url, "smtps://smtp.example.com:465");
    ck_assert_int_eq(c->upstream_tls, TLS_REQUIRED);
    ck_assert_str_eq(c->upstream_username, "rep@example.com");
    ck_assert_str_eq(c->upstream_password_file, path_of("up.pass"));
    ck_assert_ptr_null(c->upstream_password_command);
    ck_assert_str_eq(c->upstream_tls_ca, path_of("ca.pem"));
    ck_assert_int_eq(c->upstream_connections, 4);
    ck_assert_int_eq(c->upstream_timeout, 30);
    ck_assert_str_eq(c->maildir, "/srv/untild/outbox");

    ck_assert_int_eq(c->default_action, ACTION_FLAG);
    ck_assert_int_eq(c->split_recipients, 1);
    ck_assert_int_eq(c->release_time, 8 * 60 + 30);
    ck_assert_int_eq(c->release_on_weekends, 1);
    ck_assert_str_eq(c->command_domain, "cmd.example");
    ck_assert_str_eq(c->subaddress_delimiter, "+-");
    ck_assert_int_eq(c->max_queue_lifetime, 2 * 86400);
    ck_assert_str_eq(c->window_files, path_of("windows.d/*.windows"));
    ck_assert_str_eq(c->notify_from, "gate@example.com");
    ck_assert_str_eq(c->notify_to, "boss@example.com");
    char want[PATH_MAX + 8];
    snprintf(want, sizeof want, "unix:%s", path_of("policy.sock"));
    ck_assert_str_eq(c->policy_listen, want);
    ck_assert_str_eq(c->postfix_config_dir, "/etc/postfix");

    ck_assert_uint_eq(c->nimap, 1);
    ck_assert_ptr_null(c->imap[0].rep);
    ck_assert_str_eq(c->imap[0].url, "imaps://imap.example.com");
    ck_assert_str_eq(c->imap[0].username, "rep@example.com");
    ck_assert_str_eq(c->imap[0].password_file, path_of("imap.pass"));
    ck_assert_str_eq(c->imap[0].tls_ca, path_of("ca.pem"));
    ck_assert_int_eq(c->imap[0].tls, TLS_REQUIRED);
    ck_assert_str_eq(c->imap[0].sent_folders, "Sent, Sent Items");
    ck_assert_str_eq(c->imap[0].inbox, "INBOX");
    ck_assert_str_eq(c->imap[0].notice_folder, "Untild");
    ck_assert_str_eq(c->imap[0].later_folder, "Contact later");
    ck_assert_int_eq(c->imap[0].poll_interval, 30);
    ck_assert_int_eq(c->imap[0].customer_reply_reopens, REOPEN_END_WINDOW);

    ck_assert_uint_eq(c->ncaldav, 1);
    ck_assert_ptr_null(c->caldav[0].rep);
    ck_assert_str_eq(c->caldav[0].url, "http://127.0.0.1:5232/rep/");
    ck_assert_int_eq(c->caldav[0].tls, TLS_NONE);
    ck_assert_str_eq(c->caldav[0].username, "rep");
    ck_assert_str_eq(c->caldav[0].password_command, "pass show caldav");
    ck_assert_str_eq(c->caldav[0].calendars, "Work, Home");
    ck_assert_int_eq(c->caldav[0].action, ACTION_HOLD);
    ck_assert_str_eq(c->caldav[0].windows_calendar, "Do not contact");
    ck_assert_int_eq(c->caldav[0].poll_interval, 120);
    ck_assert_str_eq(c->caldav[0].proxy_listen, "127.0.0.1:5233");
    config_free(c);
    config_errors_free(&e);
}
END_TEST


START_TEST(test_cadence_keys_and_lines)
{
    const char *a = write_file("windows.d/c.windows",
        "jane@acme.com  2027-07-01  reason=\"a window\"\n"
        "jane@acme.com  cadence     min_gap=14d action=flag\n"
        "@acme.com      cadence     max=\"2 per 30d\" scope=domain\n"
        "bob@acme.com   cadence     min_gap=later\n", 0644);
    struct config_errors e = { 0 };
    struct config *c = load("[cadence]\nmin_gap = 7d\nmax = 3 per 30d\nscope = domain\n"
                            "action = flag\nexempt = billing@acme.com\n"
                            "[windows]\nfiles = windows.d/*.windows\n", &e);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(e.n, 0);
    ck_assert_int_eq(c->cadence.min_gap.days, 7);
    ck_assert_int_eq(c->cadence.max, 3);
    ck_assert_int_eq(c->cadence.per.days, 30);
    ck_assert_int_eq(c->cadence.scope, CADENCE_DOMAIN);
    ck_assert_int_eq(c->cadence.action, ACTION_FLAG);
    ck_assert_str_eq(c->cadence_exempt, "billing@acme.com");
    struct windows *ix = config_load_windows(c, 1767225600, &e);
    ck_assert_ptr_nonnull(ix);
    ck_assert_uint_eq(windows_count(ix), 1);          /* cadence lines are not windows */
    ck_assert_uint_eq(c->cadence_ovr->n, 2);
    ck_assert_uint_eq(e.n, 1);
    ck_assert(has_error(&e, a, 4, "min_gap"));
    windows_free(ix);
    /* loading again (reload, -t) starts afresh */
    config_errors_free(&e);
    ix = config_load_windows(c, 1767225600, &e);
    ck_assert_uint_eq(c->cadence_ovr->n, 2);
    windows_free(ix);
    config_free(c);
    config_errors_free(&e);
    /* off by default */
    c = load("# nothing\n", &e);
    ck_assert_int_eq(cadence_rule_active(&c->cadence), 0);
    config_free(c);
    config_errors_free(&e);
}
END_TEST

START_TEST(test_followup_keys)
{
    struct config_errors e = { 0 };
    struct config *c = load("# nothing set\n", &e);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(c->followup_enabled, 1);
    ck_assert_ptr_null(c->followup_team);
    ck_assert_int_eq(c->followup_catch_up, 3 * 86400);
    config_free(c);
    c = load("[followup]\nenabled = no\nteam = sales@example.com\ncatch_up = 12h\n", &e);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(e.n, 0);
    ck_assert_int_eq(c->followup_enabled, 0);
    ck_assert_str_eq(c->followup_team, "sales@example.com");
    ck_assert_int_eq(c->followup_catch_up, 12 * 3600);
    config_free(c);
    c = load("# nothing\n", &e);
    ck_assert_int_eq(c->digest_enabled, 0);
    ck_assert_int_eq(c->digest_day, 1);
    ck_assert_int_eq(c->digest_time, 8 * 60);
    ck_assert_ptr_null(c->digest_managers);
    config_free(c);
    c = load("[digest]\nenabled = yes\nday = fri\ntime = 17:30\nmanagers = a@x.com, b@x.com\n", &e);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(c->digest_enabled, 1);
    ck_assert_int_eq(c->digest_day, 5);
    ck_assert_int_eq(c->digest_time, 17 * 60 + 30);
    ck_assert_str_eq(c->digest_managers, "a@x.com, b@x.com");
    config_free(c);
    /* [http] browser sessions (issue 14) */
    c = load("[http]\nlisten = 127.0.0.1:8025\nsession_idle = 15m\nsession_lifetime = 1d\nmax_sessions = 50\n"
             "admins = boss@example.com, ops@example.com\n", &e);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(e.n, 0);
    ck_assert_int_eq(c->http_session_idle, 900);
    ck_assert_int_eq(c->http_session_lifetime, 86400);
    ck_assert_int_eq(c->http_max_sessions, 50);
    ck_assert_str_eq(c->http_admins, "boss@example.com, ops@example.com");
    config_free(c);
}
END_TEST

START_TEST(test_defaults)
{
    struct config_errors e = { 0 };
    struct config *c = load("# nothing set\n", &e);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(e.n, 0);
    ck_assert_str_eq(c->state_dir, "/var/lib/untild");
    ck_assert_str_eq(c->control_socket, "/run/untild/control.sock");
    ck_assert_str_eq(c->timezone, "UTC");
    ck_assert_ptr_null(c->owner);
    ck_assert_str_eq(c->admin_group, "untild-admin");
    ck_assert_uint_eq(c->nlisten, 1);
    ck_assert_str_eq(c->listen[0], "127.0.0.1:10587");
    ck_assert_uint_eq(c->nlisten_tls, 0);
    ck_assert_ptr_null(c->http_listen);     /* the API is off unless asked for */
    ck_assert_uint_eq(c->http_max_body, 1024u * 1024u);
    ck_assert_int_eq(c->http_max_connections, 64);
    ck_assert_int_eq(c->http_timeout, 60);
    ck_assert_int_eq(c->http_session_idle, 1800);
    ck_assert_int_eq(c->http_session_lifetime, 43200);
    ck_assert_int_eq(c->http_max_sessions, 1000);
    ck_assert_int_eq(c->http_max_sessions_per_rep, 10);
    ck_assert_ptr_null(c->http_admins);    /* no browser admins unless named */
    ck_assert_int_eq(c->auth, AUTH_NONE);
    ck_assert_uint_eq(c->max_message_size, 52428800u);
    ck_assert_int_eq(c->max_sessions, 1000);
    ck_assert_ptr_nonnull(c->hostname);
    ck_assert_int_eq(c->timeout_command, 300);
    ck_assert_int_eq(c->timeout_data, 600);
    ck_assert_ptr_null(c->upstream_url);
    ck_assert_str_eq(c->maildir, "/var/lib/untild/outbox");
    ck_assert_int_eq(c->upstream_tls, TLS_REQUIRED);
    ck_assert_int_eq(c->upstream_connections, 10);
    ck_assert_int_eq(c->upstream_timeout, 120);
    ck_assert_int_eq(c->default_action, ACTION_HOLD);
    ck_assert_int_eq(c->split_recipients, 0);
    ck_assert_int_eq(c->release_time, 540);
    ck_assert_int_eq(c->release_on_weekends, 0);
    ck_assert_str_eq(c->command_domain, "untild.invalid");
    ck_assert_str_eq(c->subaddress_delimiter, "+");
    ck_assert_int_eq(c->max_queue_lifetime, 5 * 86400);
    ck_assert_ptr_null(c->window_files);
    ck_assert_str_eq(c->notify_from, "untild@untild.invalid");
    ck_assert_ptr_null(c->notify_to);
    ck_assert_ptr_null(c->policy_listen);
    ck_assert_uint_eq(c->nimap, 0);
    ck_assert_uint_eq(c->ncaldav, 0);
    ck_assert_ptr_null(c->store_url);      /* SQLite only */
    ck_assert_int_eq(c->store_batch, 500);
    ck_assert_int_eq(c->store_retry_interval, 5);
    config_free(c);

    /* release_time = off, notify_from follows command_domain */
    c = load("[policy]\nrelease_time = off\ncommand_domain = cmd.test\n", &e);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(c->release_time, -1);
    ck_assert_str_eq(c->notify_from, "untild@cmd.test");
    config_free(c);
    config_errors_free(&e);
}
END_TEST

/* One bad config per row: exactly one error, on that line, with keyword. */
static const struct bad {
    const char *text;
    int line;
    const char *keyword;
} bad[] = {
    { "[bogus]\nkey = 1\n", 1, "unknown section [bogus]" },
    { "[daemon extra]\n", 1, "takes no name" },
    { "[smtp]\nfrobnicate = 1\n", 2, "unknown key 'frobnicate'" },
    { "[smtp]\nmax_sessions = 5\n[policy]\n[smtp]\nmax_sessions = 6\n", 4,
      "duplicate section [smtp]" },
    { "[smtp]\nmax_sessions = 5\nmax_sessions = 6\n", 3,
      "duplicate key 'max_sessions'" },
    { "[upstream]\nconnections = 5\nupstream_connections = 6\n", 3,
      "duplicate key" },
    { "[smtp]\nmax_sessions = lots\n", 2, "max_sessions" },
    { "[smtp]\nmax_sessions = 0\n", 2, "max_sessions" },
    { "[smtp]\ntimeout_data = -5\n", 2, "timeout_data" },
    { "[smtp]\nmax_message_size = 12q\n", 2, "max_message_size" },
    { "[policy]\nsplit_recipients = maybe\n", 2, "yes or no" },
    { "[policy]\ndefault_action = sometimes\n", 2, "default_action" },
    { "[policy]\nrelease_time = 25:00\n", 2, "release_time" },
    { "[policy]\nmax_queue_lifetime = forever\n", 2, "max_queue_lifetime" },
    { "[daemon]\ntimezone = Mars/Olympus\n", 2, "unknown time zone" },
    { "[smtp]\nauth = kerberos\n", 2, "auth" },
    { "[smtp]\nauth = passwd:missing-users\n", 2, "missing-users" },
    { "[upstream]\nurl = smtp://127.0.0.1:25\ntls = maybe\n", 3,
      "required or none" },
    { "[smtp]\nlisten = 127.0.0.1\n", 2, "bad address" },
    { "[smtp]\nlisten = ::1:25\n", 2, "bad address" },
    { "[smtp]\nlisten = 127.0.0.1:99999\n", 2, "bad address" },
    { "[smtp]\nlisten = 127.0.0.1:1,127.0.0.1:2,127.0.0.1:3,127.0.0.1:4,"
      "127.0.0.1:5,127.0.0.1:6,127.0.0.1:7,127.0.0.1:8,127.0.0.1:9\n", 2,
      "too many" },
    { "[smtp]\nlisten 127.0.0.1:25\n", 2, "missing '='" },
    { "[smtp]\n\nlisten = 0.0.0.0:25\n", 3, "open relay" },
    { "[smtp]\nlisten = [2001:db8::1]:25\n", 2, "open relay" },
    { "[upstream]\nurl = smtp://smtp.example.com:25\ntls = none\n", 3,
      "loopback" },
    { "[imap]\nurl = imap://imap.example.com\ntls = none\n", 3, "loopback" },
    { "[upstream]\nurl = ftp://127.0.0.1\n", 2, "scheme" },
    { "[smtp]\nlisten_tls = 127.0.0.1:465\n", 2, "tls_cert" },
    { "[smtp]\nauth = upstream\n", 2, "[upstream] url" },
    { "[http]\nlisten = 0.0.0.0:8080\n", 2, "not loopback" },
    { "[http]\nlisten = nowhere\n", 2, "bad address" },
    { "[http]\nmax_body = 10\n", 2, "max_body" },
    { "[http]\nsession_idle = 10s\n", 2, "session_idle" },
    { "[http]\nsession_lifetime = soon\n", 2, "duration" },
    { "[http]\nmax_sessions = 0\n", 2, "max_sessions" },
    { "[http]\nmax_sessions_per_rep = 0\n", 2, "max_sessions_per_rep" },
    { "[http]\nadmins =\n", 2, "admins" },
    { "owner = x@example.com\n", 1, "outside" },
    { "[caldav]\nurl = https://cal.example.com/\naction = reject\n", 3,
      "hold | flag" },
    { "[imap]\nusername = x\n", 1, "needs url" },
    { "[daemon]\nstate_dir =   # nothing\n", 2, "empty value" },
    { "[daemon]\nowner = \"abc\n", 2, "unterminated" },
    { "[policy_service]\nlisten = tcp:1\n", 2, "unix:PATH" },
    { "[caldav]\nurl = https://c.example/\nproxy_listen = nowhere\n", 3,
      "bad address" },
    { "[upstream]\npassword_file = no-such-file\n", 2, "no-such-file" },
    /* issue 13: [store] */
    { "[store]\nurl = mysql://db/untild\nnode = a\n", 2, "postgresql://" },
    { "[store]\nurl = postgresql://db/untild\n", 2, "needs node" },
    { "[store]\nurl = postgresql://db/untild\nnode = Paris-1\n", 3, "a-z 0-9" },
    { "[store]\nurl = postgresql://db/untild\nnode = a\nbatch = 0\n", 4, "batch" },
    { "[store]\nurl = postgresql://db/untild\nnode = a\nretry_interval = 0\n", 4, "retry_interval" },
    { "[followup]\nenabled = sometimes\n", 2, "yes or no" },
    { "[followup]\ncatch_up = 45d\n", 2, "catch_up" },
    { "[followup]\ncatch_up = 10s\n", 2, "catch_up" },
    { "[cadence]\nmin_gap = soon\n", 2, "min_gap" },
    { "[cadence]\nmax = 3 each 30d\n", 2, "max" },
    { "[cadence]\nscope = planet\n", 2, "scope" },
    { "[cadence]\naction = allow\n", 2, "action" },
    { "[digest]\nday = someday\n", 2, "day" },
    { "[digest]\ntime = off\n", 2, "time" },
    { "[digest]\nmax_rows = 5\n", 2, "max_rows" },
};

START_TEST(test_each_error)
{
    const struct bad *b = &bad[_i];
    struct config_errors e = { 0 };
    struct config *c = load(b->text, &e);
    if (e.n != 1 || !has_error(&e, path_of("untild.conf"), b->line,
                               b->keyword)) {
        fprintf(stderr, "case %d: %s", _i, b->text);
        dump(&e);
    }
    ck_assert_ptr_null(c);
    ck_assert_uint_eq(e.n, 1);
    ck_assert(has_error(&e, path_of("untild.conf"), b->line, b->keyword));
    config_errors_free(&e);
}
END_TEST

START_TEST(test_line_too_long)
{
    char *text = malloc(20000);
    ck_assert_ptr_nonnull(text);
    strcpy(text, "[daemon]\nowner = ");
    size_t n = strlen(text);
    memset(text + n, 'a', 10000);
    strcpy(text + n + 10000, "\nuser = ok\n");
    struct config_errors e = { 0 };
    struct config *c = load(text, &e);
    free(text);
    ck_assert_ptr_null(c);
    ck_assert_uint_eq(e.n, 1);
    ck_assert(has_error(&e, path_of("untild.conf"), 2, "too long"));
    config_errors_free(&e);
}
END_TEST

START_TEST(test_many_errors_all_reported)
{
    struct config_errors e = { 0 };
    struct config *c = load(
        "[daemon]\n"                      /* 1 */
        "timezone = Nowhere/Land\n"       /* 2 */
        "colour = blue\n"                 /* 3 */
        "[smtp]\n"                        /* 4 */
        "max_sessions = many\n"           /* 5 */
        "listen = 192.0.2.1:25\n"         /* 6: open relay */
        "[nonsense]\n"                    /* 7 */
        "ignored = 1\n"                   /* 8: inside unknown section */
        "[policy]\n"                      /* 9 */
        "release_on_weekends = sometimes\n" /* 10 */
        "release_on_weekends = no\n",     /* 11 */
        &e);
    ck_assert_ptr_null(c);
    const char *f = path_of("untild.conf");
    if (e.n != 7)
        dump(&e);
    ck_assert_uint_eq(e.n, 7);
    /* reported in line order, the cross-key check (line 6) included */
    ck_assert(strstr(e.lines[3], "open relay") != NULL);
    ck_assert(has_error(&e, f, 2, "Nowhere/Land"));
    ck_assert(has_error(&e, f, 3, "unknown key 'colour' in [daemon]"));
    ck_assert(has_error(&e, f, 5, "max_sessions"));
    ck_assert(has_error(&e, f, 6, "open relay"));
    ck_assert(has_error(&e, f, 7, "unknown section"));
    ck_assert(has_error(&e, f, 10, "yes or no"));
    ck_assert(has_error(&e, f, 11, "duplicate key"));
    config_errors_free(&e);
}
END_TEST

/* untild -t reports every error in one run: a duplicate, misnamed or
 * surplus section is reported and its keys are still checked (not stored),
 * so the mistake on its header hides none on the lines below it. */
START_TEST(test_bad_section_hides_nothing)
{
    struct config_errors e = { 0 };
    struct config *c = load(
        "[smtp]\n"                        /* 1 */
        "max_sessions = 5\n"              /* 2 */
        "[smtp]\n"                        /* 3: duplicate section */
        "frobnicate = 1\n"                /* 4: unknown key */
        "max_sessions = lots\n"           /* 5: bad value */
        "max_sessions = 7\n"              /* 6: duplicate key (of line 5) */
        "[imap a@example.com]\n"          /* 7 */
        "url = imaps://a.example\n"       /* 8 */
        "[imap A@example.com]\n"          /* 9: duplicate section */
        "colour = blue\n"                 /* 10: unknown key */
        "[daemon extra]\n"                /* 11: takes no name */
        "timezone = Mars/Olympus\n"       /* 12: bad value */
        "[policy] trailing\n"             /* 13: text after the header */
        "split_recipients = maybe\n"      /* 14: bad value */
        "[daemon]\n"                      /* 15: not a duplicate of 11 */
        "timezone = UTC\n",               /* 16 */
        &e);
    ck_assert_ptr_null(c);
    const char *f = path_of("untild.conf");
    if (e.n != 10)
        dump(&e);
    ck_assert_uint_eq(e.n, 10);
    ck_assert(has_error(&e, f, 3, "duplicate section [smtp] (first on line 1)"));
    ck_assert(has_error(&e, f, 4, "unknown key 'frobnicate' in [smtp]"));
    ck_assert(has_error(&e, f, 5, "max_sessions"));
    ck_assert(has_error(&e, f, 6, "duplicate key 'max_sessions' (first on line 5)"));
    ck_assert(has_error(&e, f, 9, "duplicate section [imap A@example.com]"));
    ck_assert(has_error(&e, f, 10, "unknown key 'colour' in [imap]"));
    ck_assert(has_error(&e, f, 11, "takes no name"));
    ck_assert(has_error(&e, f, 12, "Mars/Olympus"));
    ck_assert(has_error(&e, f, 13, "unexpected text after section header"));
    ck_assert(has_error(&e, f, 14, "yes or no"));
    config_errors_free(&e);
}
END_TEST

/* A surplus [imap] section (over CONFIG_MAX_REPS) is checked too. */
START_TEST(test_surplus_section_checked)
{
    char text[8192] = "";
    size_t n = 0;
    for (int i = 0; i <= CONFIG_MAX_REPS; i++)
        n += (size_t)snprintf(text + n, sizeof text - n,
                              "[imap r%d@example.com]\nurl = imaps://i.example\n", i);
    snprintf(text + n, sizeof text - n, "tls = maybe\n");
    int surplus = 2 * CONFIG_MAX_REPS + 1;
    struct config_errors e = { 0 };
    struct config *c = load(text, &e);
    ck_assert_ptr_null(c);
    if (e.n != 2)
        dump(&e);
    ck_assert_uint_eq(e.n, 2);
    ck_assert(has_error(&e, path_of("untild.conf"), surplus, "too many [imap] sections"));
    ck_assert(has_error(&e, path_of("untild.conf"), surplus + 2, "required or none"));
    config_errors_free(&e);
}
END_TEST

START_TEST(test_many_errors_count_bad_bool)
{
    struct config_errors e = { 0 };
    struct config *c = load("[policy]\nsplit_recipients = 2\n"
                            "release_on_weekends = sometimes\n"
                            "default_action = allow\n", &e);
    ck_assert_ptr_null(c);
    ck_assert_uint_eq(e.n, 2);
    ck_assert(has_error(&e, path_of("untild.conf"), 2, "yes or no"));
    ck_assert(has_error(&e, path_of("untild.conf"), 3, "yes or no"));
    config_errors_free(&e);
}
END_TEST

START_TEST(test_comments_and_quotes)
{
    struct config_errors e = { 0 };
    struct config *c = load(
        "# comment\n"
        "; also a comment\n"
        "   # indented comment\n"
        "[daemon]   # section comment\n"
        "owner = \"rep # not a comment\"   ; but this is\n"
        "user = mx#1\n"
        "admin_group = \"say \\\"hi\\\"\"\n"
        "[smtp]\n"
        "listen = 127.0.0.1:10587   # note\n"
        "hostname=gate.example\t; tab comment\n", &e);
    dump(&e);
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(c->owner, "rep # not a comment");
    ck_assert_str_eq(c->user, "mx#1");
    ck_assert_str_eq(c->admin_group, "say \"hi\"");
    ck_assert_uint_eq(c->nlisten, 1);
    ck_assert_str_eq(c->listen[0], "127.0.0.1:10587");
    ck_assert_str_eq(c->hostname, "gate.example");
    config_free(c);
    config_errors_free(&e);
}
END_TEST

START_TEST(test_relative_paths)
{
    write_file("sub/pw", "x\n", 0600);
    const char *conf = write_file("sub/untild.conf",
        "[daemon]\n"
        "state_dir = ../state\n"
        "control_socket = ctl.sock\n"
        "[upstream]\n"
        "url = smtp://127.0.0.1:2525\n"
        "tls = none\n"
        "password_file = pw\n"
        "[windows]\n"
        "files = w/*.windows\n", 0644);
    struct config_errors e = { 0 };
    /* a relative config path is resolved against the working directory */
    char cwd[PATH_MAX];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir(tmp), 0);
    struct config *c = config_load("sub/untild.conf", &e);
    ck_assert_int_eq(chdir(cwd), 0);
    dump(&e);
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(c->state_dir, path_of("sub/../state"));
    ck_assert_str_eq(c->control_socket, path_of("sub/ctl.sock"));
    ck_assert_str_eq(c->upstream_password_file, path_of("sub/pw"));
    ck_assert_str_eq(c->window_files, path_of("sub/w/*.windows"));
    ck_assert_str_eq(c->maildir, path_of("sub/../state/outbox"));
    ck_assert_int_eq(c->upstream_tls, TLS_NONE);
    config_free(c);

    c = config_load(conf, &e);
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(c->state_dir, path_of("sub/../state"));
    config_free(c);
    config_errors_free(&e);
}
END_TEST

START_TEST(test_password_file_modes)
{
    const char *pw = write_file("up.pass", "secret\n", 0644);
    struct config_errors e = { 0 };
    struct config *c = load("[upstream]\nurl = smtp://127.0.0.1:25\n"
                            "tls = none\npassword_file = up.pass\n", &e);
    ck_assert_ptr_null(c);
    ck_assert_uint_eq(e.n, 1);
    char want[PATH_MAX * 2 + 100];
    snprintf(want, sizeof want, "%s:4: password_file %s is group/world "
             "readable (chmod 600)", path_of("untild.conf"), pw);
    ck_assert_str_eq(e.lines[0], want);
    config_errors_free(&e);

    ck_assert_int_eq(chmod(pw, 0600), 0);
    c = load("[upstream]\nurl = smtp://127.0.0.1:25\n"
             "tls = none\npassword_file = up.pass\n", &e);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(e.n, 0);
    config_free(c);

    /* the same rule for [imap] */
    ck_assert_int_eq(chmod(pw, 0604), 0);
    c = load("[imap]\nurl = imaps://imap.example.com\n"
             "password_file = up.pass\n", &e);
    ck_assert_ptr_null(c);
    ck_assert_uint_eq(e.n, 1);
    ck_assert(has_error(&e, path_of("untild.conf"), 3, "chmod 600"));
    config_errors_free(&e);
}
END_TEST

START_TEST(test_loopback_tls_none)
{
    static const char *const ok[] = {
        "[upstream]\nurl = smtp://127.0.0.1:2525\ntls = none\n",
        "[upstream]\nurl = smtp://localhost:2525\ntls = none\n",
        "[upstream]\nurl = smtp://user@[::1]:2525/\ntls = none\n",
        "[imap]\nurl = imap://127.0.0.2:1143\ntls = none\n",
        "[smtp]\nlisten = localhost:25, [::1]:25, 127.1.2.3:25\n",
        "[smtp]\nlisten = 0.0.0.0:587\nauth = upstream\n"
        "[upstream]\nurl = smtp://smtp.example.com:587\n",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct config_errors e = { 0 };
        struct config *c = load(ok[i], &e);
        dump(&e);
        ck_assert_ptr_nonnull(c);
        config_free(c);
        config_errors_free(&e);
    }
}
END_TEST

START_TEST(test_imap_per_rep)
{
    struct config_errors e = { 0 };
    struct config *c = load(
        "[imap alice@example.com]\n"
        "url = imaps://imap.example.com\n"
        "username = alice\n"
        "[imap bob@example.com]\n"
        "url = imaps://imap.example.com\n"
        "username = bob\n"
        "poll_interval = 90\n"
        "[caldav bob@example.com]\n"
        "url = https://cal.example.com/bob/\n", &e);
    dump(&e);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(c->nimap, 2);
    ck_assert_str_eq(c->imap[0].rep, "alice@example.com");
    ck_assert_str_eq(c->imap[0].username, "alice");
    ck_assert_int_eq(c->imap[0].poll_interval, 60);
    ck_assert_str_eq(c->imap[0].inbox, "INBOX");
    ck_assert_str_eq(c->imap[1].rep, "bob@example.com");
    ck_assert_str_eq(c->imap[1].username, "bob");
    ck_assert_int_eq(c->imap[1].poll_interval, 90);
    ck_assert_uint_eq(c->ncaldav, 1);
    ck_assert_str_eq(c->caldav[0].rep, "bob@example.com");
    ck_assert_str_eq(c->caldav[0].calendars, "*");
    ck_assert_int_eq(c->caldav[0].action, ACTION_FLAG);
    config_free(c);

    /* the same rep twice is a duplicate section */
    c = load("[imap alice@example.com]\nurl = imaps://a.example\n"
             "[imap ALICE@example.com]\nurl = imaps://b.example\n", &e);
    ck_assert_ptr_null(c);
    ck_assert_uint_eq(e.n, 1);
    ck_assert(has_error(&e, path_of("untild.conf"), 3, "duplicate section"));
    config_errors_free(&e);
}
END_TEST

struct seen { int n; int lines[8]; const char *files[8]; int bad; };

static int visit(const struct window *w, void *arg)
{
    struct seen *s = arg;
    if (w->source != WSRC_FILE)
        s->bad++;
    if (s->n < 8) {
        s->lines[s->n] = w->line;
        s->files[s->n] = w->file;
    }
    s->n++;
    return 0;
}

START_TEST(test_window_files)
{
    const char *a = write_file("windows.d/a.windows",
        "# who            until        options\n"
        "jane@acme.com    2027-07-01   reason=\"Lease ends in July\" "
        "action=hold\n"
        "bob@initech.com  notadate     action=flag\n"
        "\n"
        "@globex.com      2027-01-15   reason=\"RFP quiet period\" "
        "action=reject\n", 0644);
    const char *b = write_file("windows.d/b.windows",
        "carol@example.org never\n", 0644);
    write_file("windows.d/ignored.txt", "not a window file at all\n", 0644);
    struct config_errors e = { 0 };
    struct config *c = load("[windows]\nfiles = windows.d/*.windows\n", &e);
    ck_assert_ptr_nonnull(c);

    time_t now = 1767225600;  /* 2026-01-01T00:00:00Z */
    struct windows *ix = config_load_windows(c, now, &e);
    ck_assert_ptr_nonnull(ix);
    if (e.n != 1)
        dump(&e);
    ck_assert_uint_eq(e.n, 1);
    ck_assert(has_error(&e, a, 3, ""));
    ck_assert_uint_eq(windows_count(ix), 3);

    struct seen s = { 0 };
    windows_foreach(ix, visit, &s);
    ck_assert_int_eq(s.n, 3);
    ck_assert_int_eq(s.bad, 0);
    int got_a2 = 0, got_a5 = 0, got_b1 = 0;
    for (int i = 0; i < 3; i++) {
        ck_assert_ptr_nonnull(s.files[i]);
        if (strcmp(s.files[i], a) == 0 && s.lines[i] == 2) got_a2 = 1;
        if (strcmp(s.files[i], a) == 0 && s.lines[i] == 5) got_a5 = 1;
        if (strcmp(s.files[i], b) == 0 && s.lines[i] == 1) got_b1 = 1;
    }
    ck_assert(got_a2 && got_a5 && got_b1);
    windows_free(ix);
    config_free(c);
    config_errors_free(&e);
}
END_TEST

START_TEST(test_window_files_edge)
{
    struct config_errors e = { 0 };
    /* no files set: empty index */
    struct config *c = load("# none\n", &e);
    ck_assert_ptr_nonnull(c);
    struct windows *ix = config_load_windows(c, 1767225600, &e);
    ck_assert_ptr_nonnull(ix);
    ck_assert_uint_eq(windows_count(ix), 0);
    windows_free(ix);
    config_free(c);

    /* a glob that matches nothing is not an error */
    c = load("[windows]\nfiles = nowhere/*.windows\n", &e);
    ck_assert_ptr_nonnull(c);
    ix = config_load_windows(c, 1767225600, &e);
    ck_assert_ptr_nonnull(ix);
    ck_assert_uint_eq(e.n, 0);
    ck_assert_uint_eq(windows_count(ix), 0);
    windows_free(ix);
    config_free(c);

    /* a line over 64 KiB is refused, the next one still loads */
    size_t big = 70 * 1024;
    char *text = malloc(big + 100);
    ck_assert_ptr_nonnull(text);
    memset(text, 'x', big);
    strcpy(text + big, "\nann@example.com 2027-07-01\n");
    const char *w = write_file("w/one.windows", text, 0644);
    free(text);
    c = load("[windows]\nfiles = w/*.windows\n", &e);
    ck_assert_ptr_nonnull(c);
    ix = config_load_windows(c, 1767225600, &e);
    ck_assert_ptr_nonnull(ix);
    ck_assert_uint_eq(e.n, 1);
    ck_assert(has_error(&e, w, 1, "too long"));
    ck_assert_uint_eq(windows_count(ix), 1);
    windows_free(ix);
    config_free(c);
    config_errors_free(&e);
}
END_TEST

START_TEST(test_errors_api)
{
    struct config_errors e = { 0 };
    config_errors_add(&e, "f.conf", 7, "bad %s", "thing");
    config_errors_add(&e, "f.conf", 0, "cannot open");
    ck_assert_uint_eq(e.n, 2);
    ck_assert_str_eq(e.lines[0], "f.conf:7: bad thing");
    ck_assert_str_eq(e.lines[1], "f.conf: cannot open");
    config_errors_free(&e);
    ck_assert_uint_eq(e.n, 0);

    struct config *c = config_load(path_of("missing.conf"), &e);
    ck_assert_ptr_null(c);
    ck_assert_uint_eq(e.n, 1);
    ck_assert(strstr(e.lines[0], "cannot open") != NULL);
    config_errors_free(&e);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *t = tcase_create("core");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_full_round_trip);
    tcase_add_test(t, test_defaults);
    tcase_add_test(t, test_followup_keys);
    tcase_add_test(t, test_cadence_keys_and_lines);
    tcase_add_loop_test(t, test_each_error, 0,
                        (int)(sizeof bad / sizeof bad[0]));
    tcase_add_test(t, test_line_too_long);
    tcase_add_test(t, test_many_errors_all_reported);
    tcase_add_test(t, test_bad_section_hides_nothing);
    tcase_add_test(t, test_surplus_section_checked);
    tcase_add_test(t, test_many_errors_count_bad_bool);
    tcase_add_test(t, test_comments_and_quotes);
    tcase_add_test(t, test_relative_paths);
    tcase_add_test(t, test_password_file_modes);
    tcase_add_test(t, test_loopback_tls_none);
    tcase_add_test(t, test_imap_per_rep);
    tcase_add_test(t, test_window_files);
    tcase_add_test(t, test_window_files_edge);
    tcase_add_test(t, test_errors_api);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    umask(022);
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
