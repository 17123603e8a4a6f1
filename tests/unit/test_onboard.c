/* test_onboard.c - the mail client files of `untilctl onboard`: both are
 * well-formed XML (xmllint), carry the SMTP settings the configuration
 * implies, and escape what the rep's address holds; the self-signed
 * loopback certificate is handed over (copy, profile payload, fingerprint). */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "untild/config.h"
#include "untild/onboard.h"
#include "untild/tls_self.h"

#include <gnutls/gnutls.h>

#define PLIST_VAL(key) "string(/plist/dict/array/dict/key[.='" key "']/following-sibling::*[1])"
#define PLIST_TAG(key) "name(/plist/dict/array/dict/key[.='" key "']/following-sibling::*[1])"

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_onboard.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char p[128];
    snprintf(p, sizeof p, "%s/%s", dir, ONBOARD_AUTOCONFIG);
    unlink(p);
    snprintf(p, sizeof p, "%s/%s", dir, ONBOARD_PROFILE);
    unlink(p);
    snprintf(p, sizeof p, "%s/%s", dir, ONBOARD_CERT);
    unlink(p);
    rmdir(dir);
}

/* A config as config_load leaves it for the defaults we care about. */
static struct config *cfg_new(void)
{
    struct config *c = calloc(1, sizeof *c);
    ck_assert_ptr_nonnull(c);
    c->listen[0] = (char *)"127.0.0.1:10587";
    c->nlisten = 1;
    c->auth = AUTH_NONE;
    c->hostname = (char *)"gate.example.net";
    return c;
}

/* Run xmllint with args on file; return its stdout (malloc'd) and exit
 * status in *rc. */
static char *xmllint(const char *a1, const char *a2, const char *name, int *rc)
{
    char path[128];
    int fds[2];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        if (a2)
            execlp("xmllint", "xmllint", a1, a2, path, (char *)NULL);
        else
            execlp("xmllint", "xmllint", a1, path, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char *out = calloc(1, 8192);
    size_t n = 0;
    ssize_t r;
    ck_assert_ptr_nonnull(out);
    while (n < 8191 && (r = read(fds[0], out + n, 8191 - n)) > 0)
        n += (size_t)r;
    close(fds[0]);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    *rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    /* xmllint ends an --xpath result with a newline of its own. */
    if (n > 0 && out[n - 1] == '\n')
        out[n - 1] = '\0';
    return out;
}

static void assert_wellformed(const char *name)
{
    int rc;
    free(xmllint("--noout", NULL, name, &rc));
    ck_assert_msg(rc == 0, "xmllint --noout %s failed (%d)", name, rc);
}

static void assert_xpath(const char *name, const char *xpath, const char *want)
{
    int rc;
    char *got = xmllint("--xpath", xpath, name, &rc);
    ck_assert_msg(rc == 0, "xmllint --xpath %s on %s: exit %d", xpath, name, rc);
    ck_assert_str_eq(got, want);
    free(got);
}

static char *slurp(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char *buf = calloc(1, 65536);
    ck_assert_ptr_nonnull(buf);
    size_t n = fread(buf, 1, 65535, f);
    ck_assert_uint_gt(n, 0);
    fclose(f);
    return buf;
}

START_TEST(loopback_plain_no_auth)
{
    struct config *c = cfg_new();
    char *sum = NULL;
    ck_assert_int_eq(onboard_write(c, "rep@Example.COM", NULL, dir, &sum), 0);
    assert_wellformed(ONBOARD_AUTOCONFIG);
    assert_wellformed(ONBOARD_PROFILE);
    assert_xpath(ONBOARD_AUTOCONFIG, "string(/clientConfig/@version)", "1.1");
    assert_xpath(ONBOARD_AUTOCONFIG, "string(/clientConfig/emailProvider/@id)", "example.com");
    assert_xpath(ONBOARD_AUTOCONFIG, "string(/clientConfig/emailProvider/domain)", "example.com");
    assert_xpath(ONBOARD_AUTOCONFIG, "string(//outgoingServer[@type='smtp']/hostname)", "127.0.0.1");
    assert_xpath(ONBOARD_AUTOCONFIG, "string(//outgoingServer/port)", "10587");
    assert_xpath(ONBOARD_AUTOCONFIG, "string(//outgoingServer/socketType)", "plain");
    assert_xpath(ONBOARD_AUTOCONFIG, "string(//outgoingServer/authentication)", "none");
    assert_xpath(ONBOARD_AUTOCONFIG, "string(//outgoingServer/username)", "%EMAILADDRESS%");
    assert_xpath(ONBOARD_AUTOCONFIG, "count(//incomingServer)", "0");

    assert_xpath(ONBOARD_PROFILE, "string(/plist/dict/key[.='PayloadType']/following-sibling::*[1])",
                 "Configuration");
    assert_xpath(ONBOARD_PROFILE, PLIST_VAL("PayloadType"), "com.apple.mail.managed");
    assert_xpath(ONBOARD_PROFILE, PLIST_VAL("EmailAddress"), "rep@Example.COM");
    assert_xpath(ONBOARD_PROFILE, PLIST_VAL("OutgoingMailServerHostName"), "127.0.0.1");
    assert_xpath(ONBOARD_PROFILE, PLIST_VAL("OutgoingMailServerPortNumber"), "10587");
    assert_xpath(ONBOARD_PROFILE, PLIST_TAG("OutgoingMailServerPortNumber"), "integer");
    assert_xpath(ONBOARD_PROFILE, PLIST_TAG("OutgoingMailServerUseSSL"), "false");
    assert_xpath(ONBOARD_PROFILE, PLIST_VAL("OutgoingMailServerAuthentication"), "EmailAuthNone");
    assert_xpath(ONBOARD_PROFILE, PLIST_VAL("IncomingMailServerHostName"), "imap.example.invalid");
    assert_xpath(ONBOARD_PROFILE, PLIST_VAL("PayloadVersion"), "1");
    assert_xpath(ONBOARD_PROFILE, "count(/plist/dict/array/dict)", "1");

    /* Two distinct v4 UUIDs, upper-case hex. */
    int rc;
    char *u1 = xmllint("--xpath", "string(/plist/dict/key[.='PayloadUUID']/following-sibling::*[1])",
                       ONBOARD_PROFILE, &rc);
    char *u2 = xmllint("--xpath", PLIST_VAL("PayloadUUID"), ONBOARD_PROFILE, &rc);
    ck_assert_uint_eq(strlen(u1), 36);
    ck_assert_uint_eq(strspn(u1, "0123456789ABCDEF-"), 36);
    ck_assert_int_eq(u1[14], '4');
    ck_assert_str_ne(u1, u2);
    free(u1);
    free(u2);

    ck_assert_ptr_nonnull(sum);
    ck_assert_ptr_nonnull(strstr(sum, "127.0.0.1"));
    ck_assert_ptr_nonnull(strstr(sum, "10587"));
    ck_assert_ptr_nonnull(strstr(sum, "Authentication:  none"));
    free(sum);
    free(c);
}
END_TEST

START_TEST(starttls_password_host)
{
    struct config *c = cfg_new();
    char *sum = NULL;
    c->listen[0] = (char *)"0.0.0.0:2525";
    c->tls_cert = (char *)"/etc/untild/cert.pem";
    c->tls_key = (char *)"/etc/untild/key.pem";
    c->auth = AUTH_UPSTREAM;
    ck_assert_int_eq(onboard_write(c, "rep@example.com", "mail.example.com", dir, &sum), 0);
    assert_wellformed(ONBOARD_AUTOCONFIG);
    assert_wellformed(ONBOARD_PROFILE);
    assert_xpath(ONBOARD_AUTOCONFIG, "string(//outgoingServer/hostname)", "mail.example.com");
    assert_xpath(ONBOARD_AUTOCONFIG, "string(//outgoingServer/port)", "2525");
    assert_xpath(ONBOARD_AUTOCONFIG, "string(//outgoingServer/socketType)", "STARTTLS");
    assert_xpath(ONBOARD_AUTOCONFIG, "string(//outgoingServer/authentication)", "password-cleartext");
    assert_xpath(ONBOARD_PROFILE, PLIST_VAL("OutgoingMailServerAuthentication"), "EmailAuthPassword");
    assert_xpath(ONBOARD_PROFILE, PLIST_TAG("OutgoingMailServerUseSSL"), "true");
    assert_xpath(ONBOARD_PROFILE, PLIST_VAL("OutgoingMailServerUsername"), "rep@example.com");
    ck_assert_ptr_nonnull(strstr(sum, "STARTTLS"));
    ck_assert_ptr_nonnull(strstr(sum, "mail.example.com"));
    free(sum);

    /* Wildcard listen and no --host: the configured host name. */
    ck_assert_int_eq(onboard_write(c, "rep@example.com", NULL, dir, &sum), 0);
    assert_xpath(ONBOARD_AUTOCONFIG, "string(//outgoingServer/hostname)", "gate.example.net");
    free(sum);
    free(c);
}
END_TEST

START_TEST(implicit_tls_and_imap)
{
    struct config *c = cfg_new();
    char *sum = NULL;
    c->nlisten = 0;
    c->listen_tls[0] = (char *)"[::1]:10465";
    c->nlisten_tls = 1;
    c->owner = (char *)"rep@example.com";
    c->imap[0].url = (char *)"imaps://imap.example.com:1993/";
    c->imap[0].tls = TLS_REQUIRED;
    c->nimap = 1;
    ck_assert_int_eq(onboard_write(c, "rep@example.com", NULL, dir, &sum), 0);
    assert_wellformed(ONBOARD_AUTOCONFIG);
    assert_wellformed(ONBOARD_PROFILE);
    assert_xpath(ONBOARD_AUTOCONFIG, "string(//outgoingServer/hostname)", "::1");
    assert_xpath(ONBOARD_AUTOCONFIG, "string(//outgoingServer/port)", "10465");
    assert_xpath(ONBOARD_AUTOCONFIG, "string(//outgoingServer/socketType)", "SSL");
    assert_xpath(ONBOARD_AUTOCONFIG, "string(//incomingServer[@type='imap']/hostname)", "imap.example.com");
    assert_xpath(ONBOARD_AUTOCONFIG, "string(//incomingServer/port)", "1993");
    assert_xpath(ONBOARD_PROFILE, PLIST_VAL("IncomingMailServerHostName"), "imap.example.com");
    assert_xpath(ONBOARD_PROFILE, PLIST_VAL("IncomingMailServerPortNumber"), "1993");
    assert_xpath(ONBOARD_PROFILE, PLIST_TAG("OutgoingMailServerUseSSL"), "true");
    free(sum);

    /* Another rep does not get the owner's mailbox. */
    ck_assert_int_eq(onboard_write(c, "other@example.com", NULL, dir, &sum), 0);
    assert_xpath(ONBOARD_AUTOCONFIG, "count(//incomingServer)", "0");
    assert_xpath(ONBOARD_PROFILE, PLIST_VAL("IncomingMailServerHostName"), "imap.example.invalid");
    free(sum);
    free(c);
}
END_TEST

START_TEST(escapes_rep)
{
    struct config *c = cfg_new();
    char *sum = NULL;
    const char *rep = "\"a&b<c>'\"@ex&ample.com";
    ck_assert_int_eq(onboard_write(c, rep, NULL, dir, &sum), 0);
    assert_wellformed(ONBOARD_AUTOCONFIG);
    assert_wellformed(ONBOARD_PROFILE);
    assert_xpath(ONBOARD_PROFILE, PLIST_VAL("EmailAddress"), rep);
    assert_xpath(ONBOARD_AUTOCONFIG, "string(/clientConfig/emailProvider/@id)", "ex&ample.com");
    char *raw = slurp(ONBOARD_PROFILE);
    /* libxml2's escaping: ' stays as it is (every attribute is in "...") */
    ck_assert_ptr_nonnull(strstr(raw, "&quot;a&amp;b&lt;c&gt;'&quot;@ex&amp;ample.com"));
    ck_assert_ptr_null(strstr(raw, "a&b"));
    free(raw);
    raw = slurp(ONBOARD_AUTOCONFIG);
    ck_assert_ptr_nonnull(strstr(raw, "id=\"ex&amp;ample.com\""));
    free(raw);
    free(sum);

    /* "--" is fine in values but would break an XML comment. */
    ck_assert_int_eq(onboard_write(c, "a--b-@example.com", NULL, dir, &sum), 0);
    assert_wellformed(ONBOARD_AUTOCONFIG);
    assert_wellformed(ONBOARD_PROFILE);
    assert_xpath(ONBOARD_PROFILE, PLIST_VAL("EmailAddress"), "a--b-@example.com");
    free(sum);

    /* A host given on the command line is escaped too. */
    ck_assert_int_eq(onboard_write(c, "rep@example.com", "h<o>st", dir, &sum), 0);
    assert_wellformed(ONBOARD_PROFILE);
    assert_xpath(ONBOARD_PROFILE, PLIST_VAL("OutgoingMailServerHostName"), "h<o>st");
    free(sum);
    free(c);
}
END_TEST

START_TEST(bad_input)
{
    struct config *c = cfg_new();
    char *sum = (char *)"x";
    errno = 0;
    ck_assert_int_eq(onboard_write(c, "no-at-sign", NULL, dir, &sum), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_null(sum);
    ck_assert_int_eq(onboard_write(c, "rep@", NULL, dir, &sum), -1);
    ck_assert_int_eq(onboard_write(c, "@example.com", NULL, dir, &sum), -1);
    ck_assert_int_eq(onboard_write(c, "re\np@example.com", NULL, dir, &sum), -1);
    ck_assert_int_eq(onboard_write(c, "rep@example.com", "bad\001host", dir, &sum), -1);
    ck_assert_int_eq(errno, EINVAL);
    /* Nothing was written for the refused calls. */
    char p[128];
    snprintf(p, sizeof p, "%s/%s", dir, ONBOARD_AUTOCONFIG);
    ck_assert_int_ne(access(p, F_OK), 0);
    /* An output directory that does not exist is the system call's error. */
    ck_assert_int_eq(onboard_write(c, "rep@example.com", NULL, "/nonexistent/untild-onboard", &sum), -1);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_ptr_null(sum);
    free(c);
}
END_TEST

#define CERT_VAL(key) "string(/plist/dict/array/dict[2]/key[.='" key "']/following-sibling::*[1])"

START_TEST(self_signed_certificate)
{
    struct config *c = cfg_new();
    char state[64], path[128], *sum = NULL;
    snprintf(state, sizeof state, "/tmp/test_onboard_state.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(state));
    c->state_dir = state;
    c->tls_self_signed = 1;

    /* untild never started: STARTTLS all the same, no certificate yet. */
    ck_assert_int_eq(onboard_write(c, "rep@example.com", NULL, dir, &sum), 0);
    assert_xpath(ONBOARD_AUTOCONFIG, "string(//outgoingServer/socketType)", "STARTTLS");
    assert_xpath(ONBOARD_PROFILE, PLIST_TAG("OutgoingMailServerUseSSL"), "true");
    assert_xpath(ONBOARD_PROFILE, "count(/plist/dict/array/dict)", "1");
    ck_assert_ptr_nonnull(strstr(sum, "cannot read"));
    ck_assert_ptr_nonnull(strstr(sum, "start untild"));
    snprintf(path, sizeof path, "%s/%s", dir, ONBOARD_CERT);
    ck_assert_int_ne(access(path, F_OK), 0);
    free(sum);

    struct tls_self ts;
    ck_assert_int_eq(tls_self_ensure(state, time(NULL), &ts), 0);
    ck_assert_int_eq(onboard_write(c, "rep@example.com", NULL, dir, &sum), 0);
    assert_wellformed(ONBOARD_PROFILE);
    assert_xpath(ONBOARD_PROFILE, "count(/plist/dict/array/dict)", "2");
    assert_xpath(ONBOARD_PROFILE, CERT_VAL("PayloadType"), "com.apple.security.pkcs1");
    assert_xpath(ONBOARD_PROFILE, CERT_VAL("PayloadVersion"), "1");
    /* The payload is the certificate's DER. */
    int rc;
    char *b64 = xmllint("--xpath", CERT_VAL("PayloadContent"), ONBOARD_PROFILE, &rc);
    ck_assert_int_eq(rc, 0);
    char *w = b64;
    for (char *r = b64; *r; r++)
        if (*r != ' ' && *r != '\n')
            *w++ = *r;
    *w = '\0';
    gnutls_datum_t in = { (unsigned char *)b64, (unsigned)strlen(b64) }, der;
    ck_assert_int_eq(gnutls_base64_decode2(&in, &der), 0);
    unsigned char *want = NULL;
    size_t wantlen = 0;
    char *pem = NULL, fpr[TLS_SELF_FPR_LEN + 1];
    size_t pemlen = 0;
    ck_assert_int_eq(tls_self_read_cert(ts.cert, &pem, &pemlen, &want, &wantlen, fpr), 0);
    ck_assert_uint_eq(der.size, wantlen);
    ck_assert_int_eq(memcmp(der.data, want, wantlen), 0);
    gnutls_free(der.data);
    free(want);
    free(b64);
    /* The copy for other clients: the same PEM, readable. */
    char *copy = slurp(ONBOARD_CERT);
    ck_assert_str_eq(copy, pem);
    free(copy);
    free(pem);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0644);
    /* The summary: where the copy is, the fingerprint, each client. */
    ck_assert_ptr_nonnull(strstr(sum, ts.sha256));
    ck_assert_ptr_nonnull(strstr(sum, ONBOARD_CERT));
    ck_assert_ptr_nonnull(strstr(sum, "ssl_ca_certificates_file"));
    ck_assert_ptr_nonnull(strstr(sum, "tls_trust_file"));
    ck_assert_ptr_nonnull(strstr(sum, "smtpSSLCertPath"));
    ck_assert_ptr_nonnull(strstr(sum, "Thunderbird"));
    ck_assert_ptr_null(strstr(sum, "does not name"));
    free(sum);

    /* A name the certificate does not carry: said. */
    ck_assert_int_eq(onboard_write(c, "rep@example.com", "mail.example.com", dir, &sum), 0);
    ck_assert_ptr_nonnull(strstr(sum, "does not name mail.example.com"));
    free(sum);

    /* A configured certificate: nothing of the self-signed one. */
    unlink(path);
    c->tls_cert = (char *)"/etc/untild/cert.pem";
    c->tls_key = (char *)"/etc/untild/key.pem";
    ck_assert_int_eq(onboard_write(c, "rep@example.com", NULL, dir, &sum), 0);
    assert_xpath(ONBOARD_PROFILE, "count(/plist/dict/array/dict)", "1");
    ck_assert_ptr_null(strstr(sum, "SHA-256"));
    ck_assert_int_ne(access(path, F_OK), 0);
    free(sum);

    /* Switched off: plain, as before. */
    c->tls_cert = c->tls_key = NULL;
    c->tls_self_signed = 0;
    ck_assert_int_eq(onboard_write(c, "rep@example.com", NULL, dir, &sum), 0);
    assert_xpath(ONBOARD_AUTOCONFIG, "string(//outgoingServer/socketType)", "plain");
    assert_xpath(ONBOARD_PROFILE, "count(/plist/dict/array/dict)", "1");
    free(sum);

    unlink(ts.cert);
    unlink(ts.key);
    rmdir(state);
    free(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("onboard");
    TCase *tc = tcase_create("files");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, loopback_plain_no_auth);
    tcase_add_test(tc, starttls_password_host);
    tcase_add_test(tc, implicit_tls_and_imap);
    tcase_add_test(tc, escapes_rep);
    tcase_add_test(tc, bad_input);
    tcase_add_test(tc, self_signed_certificate);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
