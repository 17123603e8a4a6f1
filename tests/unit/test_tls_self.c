/* test_tls_self.c - the self-signed loopback certificate: made once (0600,
 * no temporary left), reused afterwards, made again when it nears its end,
 * does not parse or its key does not match; it names localhost, 127.0.0.1
 * and ::1, is a serverAuth end-entity certificate valid now, and a GnuTLS
 * client that trusts exactly it accepts it for those names. */
#include "untild/tls_self.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NOW ((time_t)1800000000)   /* 2027-01-15 */
#define DAY 86400

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_tls_self.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
    rmdir(dir);
}

static size_t entries(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static gnutls_x509_crt_t load(const char *path)
{
    gnutls_datum_t d;
    gnutls_x509_crt_t crt;
    ck_assert_int_eq(gnutls_load_file(path, &d), 0);
    ck_assert_int_eq(gnutls_x509_crt_init(&crt), 0);
    ck_assert_int_eq(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM), 0);
    gnutls_free(d.data);
    return crt;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

START_TEST(made_once_then_reused)
{
    struct tls_self a, b;
    struct stat st;
    ck_assert_int_eq(tls_self_ensure(dir, NOW, &a), 0);
    ck_assert_int_eq(a.made, TLS_SELF_CREATED);
    ck_assert_uint_eq(strlen(a.sha256), TLS_SELF_FPR_LEN - 1);
    ck_assert_uint_eq(strspn(a.sha256, "0123456789ABCDEF:"), TLS_SELF_FPR_LEN - 1);
    ck_assert_int_eq(stat(a.cert, &st), 0);
    ck_assert_int_eq(st.st_mode & 07777, 0600);
    ck_assert_int_eq(stat(a.key, &st), 0);
    ck_assert_int_eq(st.st_mode & 07777, 0600);
    ino_t key_ino = st.st_ino;
    ck_assert_uint_eq(entries(), 2);            /* no temporary left behind */

    ck_assert_int_eq(tls_self_ensure(dir, NOW + 100 * DAY, &b), 0);
    ck_assert_int_eq(b.made, TLS_SELF_REUSED);
    ck_assert_str_eq(a.sha256, b.sha256);
    ck_assert_int_eq(stat(b.key, &st), 0);
    ck_assert_uint_eq(st.st_ino, key_ino);      /* not rewritten */
    ck_assert_int_eq(a.not_after, b.not_after);
}
END_TEST

START_TEST(names_dates_and_use)
{
    struct tls_self t;
    ck_assert_int_eq(tls_self_ensure(dir, NOW, &t), 0);
    gnutls_x509_crt_t crt = load(t.cert);
    ck_assert_int_le(gnutls_x509_crt_get_activation_time(crt), NOW);
    ck_assert_int_ge(gnutls_x509_crt_get_activation_time(crt), NOW - DAY);
    ck_assert_int_eq(gnutls_x509_crt_get_expiration_time(crt), NOW + TLS_SELF_DAYS * (time_t)DAY);
    ck_assert_int_eq(t.not_after, NOW + TLS_SELF_DAYS * (time_t)DAY);

    /* Every subjectAltName, in order. */
    const char *want[] = { "localhost", "\x7f\0\0\1", "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1" };
    const size_t wlen[] = { 9, 4, 16 };
    const int wtype[] = { GNUTLS_SAN_DNSNAME, GNUTLS_SAN_IPADDRESS, GNUTLS_SAN_IPADDRESS };
    for (unsigned i = 0; i < 3; i++) {
        char buf[64];
        size_t n = sizeof buf;
        ck_assert_int_eq(gnutls_x509_crt_get_subject_alt_name(crt, i, buf, &n, NULL), wtype[i]);
        ck_assert_uint_eq(n, wlen[i]);
        ck_assert_int_eq(memcmp(buf, want[i], n), 0);
    }
    char buf[64];
    size_t n = sizeof buf;
    ck_assert_int_lt(gnutls_x509_crt_get_subject_alt_name(crt, 3, buf, &n, NULL), 0);
    ck_assert(gnutls_x509_crt_check_hostname(crt, "localhost"));
    ck_assert(gnutls_x509_crt_check_hostname(crt, "127.0.0.1"));
    ck_assert(gnutls_x509_crt_check_hostname(crt, "::1"));
    ck_assert(!gnutls_x509_crt_check_hostname(crt, "mail.example.com"));

    /* End entity (CA:FALSE), for TLS servers. */
    unsigned critical;
    ck_assert_int_eq(gnutls_x509_crt_get_basic_constraints(crt, &critical, NULL, NULL), 0);
    n = sizeof buf;
    ck_assert_int_eq(gnutls_x509_crt_get_key_purpose_oid(crt, 0, buf, &n, NULL), 0);
    ck_assert_str_eq(buf, GNUTLS_KP_TLS_WWW_SERVER);
    ck_assert_int_eq(gnutls_x509_crt_get_signature_algorithm(crt), GNUTLS_SIGN_ECDSA_SHA256);

    /* A client trusting exactly this certificate accepts it now (not at
     * NOW: the verification uses the real clock; the test makes a pair
     * for today in a second directory). */
    gnutls_x509_crt_deinit(crt);
    teardown();
    setup();
    ck_assert_int_eq(tls_self_ensure(dir, time(NULL), &t), 0);
    crt = load(t.cert);
    gnutls_x509_trust_list_t tl;
    unsigned status = 99;
    ck_assert_int_eq(gnutls_x509_trust_list_init(&tl, 0), 0);
    ck_assert_int_eq(gnutls_x509_trust_list_add_trust_file(tl, t.cert, NULL, GNUTLS_X509_FMT_PEM, 0, 0), 1);
    ck_assert_int_eq(gnutls_x509_trust_list_verify_crt(tl, &crt, 1, 0, &status, NULL), 0);
    ck_assert_uint_eq(status, 0);
    gnutls_x509_trust_list_deinit(tl, 1);
    gnutls_x509_crt_deinit(crt);

    /* The daemon's loader takes the pair. */
    gnutls_certificate_credentials_t cred;
    ck_assert_int_eq(gnutls_certificate_allocate_credentials(&cred), 0);
    ck_assert_int_ge(gnutls_certificate_set_x509_key_file(cred, t.cert, t.key, GNUTLS_X509_FMT_PEM), 0);
    gnutls_certificate_free_credentials(cred);
}
END_TEST

START_TEST(renewed_near_its_end)
{
    struct tls_self a, b;
    ck_assert_int_eq(tls_self_ensure(dir, NOW, &a), 0);
    ck_assert_int_eq(tls_self_ensure(dir, a.not_after - (TLS_SELF_RENEW_DAYS + 1) * DAY, &b), 0);
    ck_assert_int_eq(b.made, TLS_SELF_REUSED);
    ck_assert_int_eq(tls_self_ensure(dir, a.not_after - (TLS_SELF_RENEW_DAYS - 1) * DAY, &b), 0);
    ck_assert_int_eq(b.made, TLS_SELF_RENEWED);
    ck_assert_ptr_nonnull(strstr(b.why, "expires"));
    ck_assert_str_ne(a.sha256, b.sha256);
    ck_assert_int_gt(b.not_after, a.not_after);
    /* A clock set far back: the certificate is not valid yet. */
    ck_assert_int_eq(tls_self_ensure(dir, NOW - 365 * DAY, &b), 0);
    ck_assert_int_eq(b.made, TLS_SELF_RENEWED);
    ck_assert_ptr_nonnull(strstr(b.why, "not valid yet"));
    ck_assert_uint_eq(entries(), 2);
}
END_TEST

START_TEST(bad_pair_replaced)
{
    struct tls_self a, b, other;
    char odir[sizeof dir];
    ck_assert_int_eq(tls_self_ensure(dir, NOW, &a), 0);

    /* The key of another pair: does not match. */
    memcpy(odir, dir, sizeof dir);
    setup();
    ck_assert_int_eq(tls_self_ensure(dir, NOW, &other), 0);
    ck_assert_int_eq(rename(other.key, a.key), 0);
    teardown();
    memcpy(dir, odir, sizeof dir);
    ck_assert_int_eq(tls_self_ensure(dir, NOW, &b), 0);
    ck_assert_int_eq(b.made, TLS_SELF_RENEWED);
    ck_assert_ptr_nonnull(strstr(b.why, "does not match"));
    ck_assert_str_ne(a.sha256, b.sha256);

    /* A certificate that does not parse. */
    write_text(b.cert, "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");
    ck_assert_int_eq(tls_self_ensure(dir, NOW, &a), 0);
    ck_assert_int_eq(a.made, TLS_SELF_RENEWED);
    ck_assert_ptr_nonnull(strstr(a.why, "does not parse"));

    /* The key gone. */
    ck_assert_int_eq(unlink(a.key), 0);
    ck_assert_int_eq(tls_self_ensure(dir, NOW, &b), 0);
    ck_assert_int_eq(b.made, TLS_SELF_RENEWED);
    ck_assert_ptr_nonnull(strstr(b.why, "key is missing"));
    ck_assert_int_eq(tls_self_ensure(dir, NOW, &a), 0);
    ck_assert_int_eq(a.made, TLS_SELF_REUSED);
    ck_assert_uint_eq(entries(), 2);
}
END_TEST

START_TEST(unwritable_dir)
{
    struct tls_self t;
    char sub[128];
    snprintf(sub, sizeof sub, "%s/missing", dir);
    errno = 0;
    ck_assert_int_eq(tls_self_ensure(sub, NOW, &t), -1);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_int_eq(tls_self_ensure("", NOW, &t), -1);
    ck_assert_int_eq(errno, EINVAL);
}
END_TEST

START_TEST(read_cert)
{
    struct tls_self t;
    char *pem = NULL, fpr[TLS_SELF_FPR_LEN + 1];
    unsigned char *der = NULL;
    size_t pl = 0, dl = 0;
    ck_assert_int_eq(tls_self_ensure(dir, NOW, &t), 0);
    ck_assert_int_eq(tls_self_read_cert(t.cert, &pem, &pl, &der, &dl, fpr), 0);
    ck_assert_str_eq(fpr, t.sha256);
    ck_assert_uint_eq(strlen(pem), pl);
    ck_assert_ptr_nonnull(strstr(pem, "-----BEGIN CERTIFICATE-----"));
    ck_assert_uint_gt(dl, 100);
    ck_assert_int_eq(der[0], 0x30);              /* a DER SEQUENCE */
    free(pem);
    free(der);
    /* Only the fingerprint. */
    ck_assert_int_eq(tls_self_read_cert(t.cert, NULL, NULL, NULL, NULL, fpr), 0);
    ck_assert_str_eq(fpr, t.sha256);
    /* The key is not a certificate; a missing file is ENOENT. */
    errno = 0;
    ck_assert_int_eq(tls_self_read_cert(t.key, &pem, &pl, NULL, NULL, fpr), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(tls_self_read_cert("/nonexistent/x.pem", &pem, &pl, NULL, NULL, fpr), -1);
    ck_assert_int_eq(errno, ENOENT);
}
END_TEST

static Suite *tls_self_suite(void)
{
    Suite *s = suite_create("tls_self");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, made_once_then_reused);
    tcase_add_test(tc, names_dates_and_use);
    tcase_add_test(tc, renewed_near_its_end);
    tcase_add_test(tc, bad_pair_replaced);
    tcase_add_test(tc, unwritable_dir);
    tcase_add_test(tc, read_cert);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(tls_self_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
