/* tls_self.h - the self-signed loopback certificate of a personal install:
 * made in state_dir at first start when [smtp] has no tls_cert/tls_key
 * (and tls_self_signed = yes), reused afterwards, so clients that insist
 * on STARTTLS (neomutt, msmtp, swaks --tls) work out of the box; handed
 * to the clients by `untilctl onboard`. */
#ifndef UNTILD_TLS_SELF_H
#define UNTILD_TLS_SELF_H

#include <stddef.h>
#include <time.h>

/* File names inside state_dir. */
#define TLS_SELF_CERT "smtp-self-signed.pem"
#define TLS_SELF_KEY "smtp-self-signed.key"
/* Validity of a new certificate (Apple refuses TLS server certificates
 * valid for longer than 825 days), and how long before its end a start
 * makes a new one. */
#define TLS_SELF_DAYS 825
#define TLS_SELF_RENEW_DAYS 30
/* "AB:CD:...": 32 bytes, 3 characters each. */
#define TLS_SELF_FPR_LEN 96
/* Largest certificate or key file read. */
#define TLS_SELF_FILE_MAX 65536

enum tls_self_made { TLS_SELF_REUSED, TLS_SELF_CREATED, TLS_SELF_RENEWED };

struct tls_self {
    char cert[4096];                   /* dir/TLS_SELF_CERT */
    char key[4096];                    /* dir/TLS_SELF_KEY */
    char sha256[TLS_SELF_FPR_LEN + 1]; /* fingerprint of the certificate */
    time_t not_after;
    enum tls_self_made made;
    char why[128];                     /* TLS_SELF_RENEWED: why the old pair went */
};

/* Reuse dir's certificate and key when both read, belong together and
 * are valid at now for more than TLS_SELF_RENEW_DAYS; else make a new
 * ECDSA P-256 key and a self-signed certificate for localhost, 127.0.0.1
 * and ::1 valid TLS_SELF_DAYS from now. Each file is written 0600 under an
 * O_EXCL temporary name, fsynced and renamed into place (key first; a
 * crash between the two renames leaves a pair that does not match, made
 * again at the next start); as root they are given to dir's owner.
 * Returns 0 and fills *out, or -1 with errno set (*out->why may say more). */
int tls_self_ensure(const char *dir, time_t now, struct tls_self *out);

/* Read a PEM certificate file (at most TLS_SELF_FILE_MAX bytes): its text
 * (*pem, malloc'd, NUL-terminated), its DER form (*der, malloc'd) and
 * SHA-256 fingerprint. Any of pem/der may be NULL. 0, or -1 with errno
 * (EINVAL: not a certificate). */
int tls_self_read_cert(const char *path, char **pem, size_t *pemlen,
                       unsigned char **der, size_t *derlen,
                       char fpr[TLS_SELF_FPR_LEN + 1]);

#endif
