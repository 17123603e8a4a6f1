/* tls_self.c - the self-signed loopback certificate (see tls_self.h).
 *
 * Synopsis: tls_self_ensure(state_dir, time(NULL), &ts) at start-up and on
 * reload, before the listener loads ts.cert/ts.key; tls_self_read_cert()
 * for `untilctl onboard`, which hands the certificate to the clients.
 *
 * Why: a personal install listens on loopback only, and clients that
 * insist on STARTTLS (a recent neomutt with its defaults, msmtp with
 * `tls on`) otherwise fail on the plain listener. The certificate is an
 * end-entity certificate (CA:FALSE: NSS refuses a CA certificate used as
 * a server's) carrying serverAuth, both key identifiers and the loopback
 * names as subjectAltName, so OpenSSL's strict verification, GnuTLS and
 * Apple accept it once the client trusts it.
 *
 * Diagnostics: -1 with errno from the failing call (EINVAL for a file
 * that is not a certificate); out->why says in words why an old pair was
 * replaced. Nothing is logged here: the caller says where the files are.
 * Generating an ECDSA P-256 key takes milliseconds: done on the loop's
 * thread at start-up or reload only. */
#include "untild/tls_self.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DAY 86400

/* Map a GnuTLS error to errno (the callers report errno). */
static int gtls_fail(int r)
{
    errno = r == GNUTLS_E_MEMORY_ERROR ? ENOMEM : EINVAL;
    return -1;
}

/* The whole file, at most TLS_SELF_FILE_MAX bytes, NUL-terminated. */
static int read_bounded(const char *path, gnutls_datum_t *d)
{
    d->data = NULL;
    d->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    unsigned char *buf = malloc(TLS_SELF_FILE_MAX + 1);
    size_t n = 0;
    ssize_t r = 0;
    while (buf && n <= TLS_SELF_FILE_MAX &&
           (r = read(fd, buf + n, TLS_SELF_FILE_MAX + 1 - n)) != 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        n += (size_t)r;
    }
    int saved = !buf ? ENOMEM : r < 0 ? errno : EFBIG;
    close(fd);
    if (!buf || r < 0 || n > TLS_SELF_FILE_MAX) {
        free(buf);
        errno = saved;
        return -1;
    }
    buf[n] = '\0';
    d->data = buf;
    d->size = (unsigned)n;
    return 0;
}

static int fingerprint(gnutls_x509_crt_t crt, char out[TLS_SELF_FPR_LEN + 1])
{
    unsigned char h[32];
    size_t hl = sizeof h;
    int r = gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, h, &hl);
    if (r < 0 || hl != sizeof h)
        return gtls_fail(r);
    for (size_t i = 0; i < hl; i++)
        snprintf(out + 3 * i, 4, "%02X%s", h[i], i + 1 < hl ? ":" : "");
    return 0;
}

int tls_self_read_cert(const char *path, char **pem, size_t *pemlen,
                       unsigned char **der, size_t *derlen,
                       char fpr[TLS_SELF_FPR_LEN + 1])
{
    gnutls_datum_t text, bin = { NULL, 0 };
    gnutls_x509_crt_t crt = NULL;
    int r;
    if (read_bounded(path, &text) < 0)
        return -1;
    if ((r = gnutls_x509_crt_init(&crt)) < 0 ||
        (r = gnutls_x509_crt_import(crt, &text, GNUTLS_X509_FMT_PEM)) < 0 ||
        (fpr && (r = fingerprint(crt, fpr)) < 0) ||
        (der && (r = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &bin)) < 0))
        goto fail;
    if (der) {
        if (!(*der = malloc(bin.size ? bin.size : 1))) {
            r = GNUTLS_E_MEMORY_ERROR;
            goto fail;
        }
        memcpy(*der, bin.data, bin.size);
        *derlen = bin.size;
        gnutls_free(bin.data);
    }
    gnutls_x509_crt_deinit(crt);
    if (pem) {
        *pem = (char *)text.data;
        *pemlen = text.size;
    } else {
        free(text.data);
    }
    return 0;
fail:
    gnutls_free(bin.data);
    if (crt)
        gnutls_x509_crt_deinit(crt);
    free(text.data);
    return r == -1 ? -1 : gtls_fail(r);
}

/* 1: the pair on disk can serve (out->sha256, not_after filled); 0: make
 * a new one (out->why says why, empty when there was none). */
static int reusable(struct tls_self *out, time_t now)
{
    gnutls_datum_t c = { NULL, 0 }, k = { NULL, 0 };
    gnutls_x509_crt_t crt = NULL;
    gnutls_x509_privkey_t key = NULL;
    unsigned char id1[64], id2[64];
    size_t l1 = sizeof id1, l2 = sizeof id2;
    int ok = 0;
    out->why[0] = '\0';
    if (read_bounded(out->cert, &c) < 0 || read_bounded(out->key, &k) < 0) {
        if (errno != ENOENT)
            snprintf(out->why, sizeof out->why, "cannot read it: %s", strerror(errno));
        else if (c.data)
            snprintf(out->why, sizeof out->why, "its key is missing");
        goto done;
    }
    if (gnutls_x509_crt_init(&crt) < 0 || gnutls_x509_privkey_init(&key) < 0 ||
        gnutls_x509_crt_import(crt, &c, GNUTLS_X509_FMT_PEM) < 0 ||
        gnutls_x509_privkey_import(key, &k, GNUTLS_X509_FMT_PEM) < 0) {
        snprintf(out->why, sizeof out->why, "it does not parse");
        goto done;
    }
    if (gnutls_x509_crt_get_key_id(crt, 0, id1, &l1) < 0 ||
        gnutls_x509_privkey_get_key_id(key, 0, id2, &l2) < 0 || l1 != l2 ||
        memcmp(id1, id2, l1) != 0) {
        snprintf(out->why, sizeof out->why, "the key does not match the certificate");
        goto done;
    }
    out->not_after = gnutls_x509_crt_get_expiration_time(crt);
    time_t nb = gnutls_x509_crt_get_activation_time(crt);
    if (out->not_after == (time_t)-1 || out->not_after - now < TLS_SELF_RENEW_DAYS * DAY) {
        snprintf(out->why, sizeof out->why, "it expires within %d days", TLS_SELF_RENEW_DAYS);
        goto done;
    }
    if (nb == (time_t)-1 || nb > now + DAY) {
        snprintf(out->why, sizeof out->why, "it is not valid yet");
        goto done;
    }
    ok = fingerprint(crt, out->sha256) == 0;
done:
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (key)
        gnutls_x509_privkey_deinit(key);
    free(c.data);
    free(k.data);
    return ok;
}

/* localhost, 127.0.0.1 and ::1 as subjectAltName. */
static int set_names(gnutls_x509_crt_t crt)
{
    static const unsigned char v4[4] = { 127, 0, 0, 1 };
    static const unsigned char v6[16] = { [15] = 1 };
    int r;
    if ((r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, "localhost", 9,
                                                  GNUTLS_FSAN_SET)) < 0 ||
        (r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, v4, sizeof v4,
                                                  GNUTLS_FSAN_APPEND)) < 0 ||
        (r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, v6, sizeof v6,
                                                  GNUTLS_FSAN_APPEND)) < 0)
        return r;
    return 0;
}

/* A self-signed end-entity certificate for key, valid from an hour ago
 * (clock steps) for TLS_SELF_DAYS. */
static int make_cert(gnutls_x509_privkey_t key, time_t now, gnutls_x509_crt_t *out)
{
    static const char cn[] = "localhost", org[] = "untild self-signed loopback";
    unsigned char serial[16], id[64];
    size_t idl = sizeof id;
    gnutls_x509_crt_t crt;
    int r = gnutls_x509_crt_init(&crt);
    if (r < 0)
        return r;
    if ((r = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof serial)) < 0)
        goto fail;
    serial[0] = (unsigned char)((serial[0] & 0x3f) | 0x40);   /* positive, full length */
    if ((r = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
        (r = gnutls_x509_crt_set_serial(crt, serial, sizeof serial)) < 0 ||
        (r = gnutls_x509_crt_set_key(crt, key)) < 0 ||
        (r = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
                                           sizeof cn - 1)) < 0 ||
        (r = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_ORGANIZATION_NAME, 0, org,
                                           sizeof org - 1)) < 0 ||
        (r = gnutls_x509_crt_set_activation_time(crt, now - 3600)) < 0 ||
        (r = gnutls_x509_crt_set_expiration_time(crt, now + (time_t)TLS_SELF_DAYS * DAY)) < 0 ||
        (r = gnutls_x509_crt_set_basic_constraints(crt, 0, -1)) < 0 ||
        (r = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
        (r = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0)) < 0 ||
        (r = set_names(crt)) < 0 ||
        (r = gnutls_x509_privkey_get_key_id(key, 0, id, &idl)) < 0 ||
        (r = gnutls_x509_crt_set_subject_key_id(crt, id, idl)) < 0 ||
        (r = gnutls_x509_crt_set_authority_key_id(crt, id, idl)) < 0 ||
        (r = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0)) < 0)
        goto fail;
    *out = crt;
    return 0;
fail:
    gnutls_x509_crt_deinit(crt);
    return r;
}

/* dir/.name.tmp: O_EXCL 0600, written, fsynced, closed (checked); as root
 * given to dir's owner. Renamed into place by the caller. */
static int write_tmp(const char *tmp, const gnutls_datum_t *d, const struct stat *dirst)
{
    (void)unlink(tmp);   /* a leftover of a crash: the state_dir lock makes it ours */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off < d->size) {
        ssize_t w = write(fd, d->data + off, d->size - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            goto fail;
        off += (size_t)w;
    }
    if ((geteuid() == 0 && fchown(fd, dirst->st_uid, dirst->st_gid) < 0) || fsync(fd) < 0)
        goto fail;
    if (close(fd) < 0) {
        fd = -1;
        goto fail;
    }
    return 0;
fail:;
    int saved = errno ? errno : EIO;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    errno = saved;
    return -1;
}

/* Both temporaries first, then the key, then the certificate, then the
 * directory is fsynced. */
static int write_pair(const char *dir, struct tls_self *out, const gnutls_datum_t *cert,
                      const gnutls_datum_t *key)
{
    char ct[4200], kt[4200];
    struct stat st;
    if (stat(dir, &st) < 0)
        return -1;
    snprintf(ct, sizeof ct, "%s/." TLS_SELF_CERT ".tmp", dir);
    snprintf(kt, sizeof kt, "%s/." TLS_SELF_KEY ".tmp", dir);
    if (write_tmp(kt, key, &st) < 0)
        return -1;
    if (write_tmp(ct, cert, &st) < 0 || rename(kt, out->key) < 0 || rename(ct, out->cert) < 0) {
        int saved = errno;
        unlink(kt);
        unlink(ct);
        errno = saved;
        return -1;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0) {
        int saved = errno;
        if (dfd >= 0)
            close(dfd);
        errno = saved;
        return -1;
    }
    return close(dfd);
}

static int make_pair(const char *dir, time_t now, struct tls_self *out)
{
    gnutls_x509_privkey_t key = NULL;
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t kd = { NULL, 0 }, cd = { NULL, 0 };
    int r, rc = -1;
    if ((r = gnutls_x509_privkey_init(&key)) < 0 ||
        (r = gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                          GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0)) < 0 ||
        (r = make_cert(key, now, &crt)) < 0 ||
        (r = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL,
                                               GNUTLS_PKCS_PLAIN, &kd)) < 0 ||
        (r = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &cd)) < 0 ||
        (r = fingerprint(crt, out->sha256)) < 0) {
        if (r != -1)
            gtls_fail(r);
        goto done;
    }
    out->not_after = gnutls_x509_crt_get_expiration_time(crt);
    rc = write_pair(dir, out, &cd, &kd);
done:;
    int saved = errno;
    if (kd.data) {
        gnutls_memset(kd.data, 0, kd.size);
        gnutls_free(kd.data);
    }
    gnutls_free(cd.data);
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (key)
        gnutls_x509_privkey_deinit(key);
    errno = saved;
    return rc;
}

int tls_self_ensure(const char *dir, time_t now, struct tls_self *out)
{
    memset(out, 0, sizeof *out);
    if (!dir || !*dir) {
        errno = EINVAL;
        return -1;
    }
    if ((size_t)snprintf(out->cert, sizeof out->cert, "%s/" TLS_SELF_CERT, dir) >= sizeof out->cert ||
        (size_t)snprintf(out->key, sizeof out->key, "%s/" TLS_SELF_KEY, dir) >= sizeof out->key) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (reusable(out, now)) {
        out->made = TLS_SELF_REUSED;
        return 0;
    }
    out->made = out->why[0] ? TLS_SELF_RENEWED : TLS_SELF_CREATED;
    return make_pair(dir, now, out);
}
