/* onboard.c - mail client settings for a rep (`untilctl onboard`).
 *
 * Synopsis: onboard_write() derives the client-side view of untild's SMTP
 * listener from the configuration (host, port, TLS mode, authentication)
 * and writes it in the two formats mail clients import:
 *   config-v1.1.xml     Thunderbird autoconfig (clientConfig version 1.1),
 *                       served at autoconfig.DOMAIN/mail/config-v1.1.xml
 *                       or dropped into Thunderbird's isp/ directory;
 *   untild.mobileconfig Apple configuration profile with one
 *                       com.apple.mail.managed payload (macOS, iOS Mail).
 * Why both plus a text summary: reps use whatever client they have, and a
 * wrong port or TLS mode is the usual first-day support call.
 *
 * The Apple payload cannot describe an outgoing server alone: it requires
 * the incoming (IMAP) server too. When the configuration has an [imap]
 * section for the rep (or the owner's [imap]), its server is used;
 * otherwise the profile carries placeholders the rep edits before
 * installing, and says so in an XML comment.
 *
 * When the listener offers STARTTLS with untild's self-signed loopback
 * certificate (no tls_cert, tls_self_signed = yes: tls_self.h), the
 * certificate is handed over too: copied to outdir/untild-smtp.pem (for
 * neomutt, msmtp, git send-email, swaks), carried in the Apple profile as
 * a com.apple.security.pkcs1 payload, and its SHA-256 fingerprint printed
 * for clients that ask to accept an exception (Thunderbird). A certificate
 * not made yet (untild never started) or unreadable is said in the
 * summary; the other files are written all the same.
 *
 * Diagnostics: -1 with errno (EINVAL for a bad rep or host, else the
 * failing system call's). Every value is XML-escaped; control characters
 * (not representable in XML 1.0) are refused. */
#include "untild/onboard.h"
#include "untild/config.h"
#include "untild/strbuf.h"
#include "untild/tls_self.h"

#include <gnutls/gnutls.h>
#include <libxml/entities.h>
#include <libxml/xmlmemory.h>
#include "untild/sysutil.h"

#include <ctype.h>
#include <limits.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define REP_MAX 320
#define HOST_MAX 256
#define PLACEHOLDER_IMAP "imap.example.invalid"

enum sock { SOCK_PLAIN, SOCK_STARTTLS, SOCK_SSL };

/* The self-signed certificate the listener offers, when it does. */
struct selfcert {
    int on;                  /* STARTTLS with the self-signed certificate */
    int err;                 /* 0: read; else the errno of reading it */
    char src[4096];          /* state_dir/TLS_SELF_CERT */
    char *pem;
    size_t pemlen;
    unsigned char *der;
    size_t derlen;
    char fpr[TLS_SELF_FPR_LEN + 1];
};

struct endpoint {
    char host[HOST_MAX];
    int port;
    enum sock sock;
    int known;               /* incoming server: from the config, not a placeholder */
};

/* Printable text only: XML 1.0 has no escape for control characters. */
static int text_ok(const char *s, size_t max)
{
    size_t n = 0;
    for (; *s; s++, n++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f || n >= max)
            return 0;
    return n > 0;
}

/* libxml2 escapes (& < > " and CR); values are printable text already
 * (text_ok). Out of memory: the buffer remembers the failure. */
static void xml_esc(struct strbuf *b, const char *s)
{
    xmlChar *e = xmlEncodeSpecialChars(NULL, (const xmlChar *)s);
    if (!e) {
        b->oom = 1;
        return;
    }
    sb_puts(b, (const char *)e);
    xmlFree(e);
}

/* "host:port" or "[v6]:port" (already validated by config.c). */
static int split_hostport(const char *s, char *host, size_t hsz, int *port)
{
    const char *h = s, *he, *colon;
    if (*s == '[') {
        h = s + 1;
        if (!(he = strchr(h, ']')) || he[1] != ':')
            return -1;
        colon = he + 1;
    } else {
        if (!(colon = strrchr(s, ':')))
            return -1;
        he = colon;
    }
    size_t n = (size_t)(he - h);
    if (n == 0 || n >= hsz)
        return -1;
    memcpy(host, h, n);
    host[n] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 1 || p > 65535)
        return -1;
    *port = (int)p;
    return 0;
}

static int is_wildcard(const char *h)
{
    return !strcmp(h, "0.0.0.0") || !strcmp(h, "::") || !strcmp(h, "*");
}

/* The outgoing server as clients see it. */
static int smtp_endpoint(const struct config *c, const char *host, struct endpoint *e)
{
    const char *addr;
    if (c->nlisten > 0) {
        addr = c->listen[0];
        e->sock = c->tls_cert || c->tls_self_signed ? SOCK_STARTTLS : SOCK_PLAIN;
    } else if (c->nlisten_tls > 0) {
        addr = c->listen_tls[0];
        e->sock = SOCK_SSL;
    } else {
        addr = "127.0.0.1:10587";   /* config.c's default */
        e->sock = SOCK_PLAIN;
    }
    if (split_hostport(addr, e->host, sizeof e->host, &e->port) < 0)
        return -1;
    if (host)
        snprintf(e->host, sizeof e->host, "%s", host);
    else if (is_wildcard(e->host) && c->hostname)
        snprintf(e->host, sizeof e->host, "%s", c->hostname);
    return text_ok(e->host, HOST_MAX - 1) ? 0 : -1;
}

/* The rep's [imap REP] section, else the owner's [imap]. */
static const struct imap_cfg *imap_for(const struct config *c, const char *rep)
{
    for (size_t i = 0; i < c->nimap; i++)
        if (c->imap[i].rep && !strcasecmp(c->imap[i].rep, rep))
            return &c->imap[i];
    for (size_t i = 0; i < c->nimap; i++)
        if (!c->imap[i].rep && (!c->owner || !strcasecmp(c->owner, rep)))
            return &c->imap[i];
    return NULL;
}

/* imap[s]://[user@]host[:port][/...] -> endpoint; placeholders if unknown. */
static void imap_endpoint(const struct config *c, const char *rep, struct endpoint *e)
{
    const struct imap_cfg *m = imap_for(c, rep);
    snprintf(e->host, sizeof e->host, "%s", PLACEHOLDER_IMAP);
    e->port = 993;
    e->sock = SOCK_SSL;
    e->known = 0;
    if (!m || !m->url)
        return;
    const char *u = m->url, *sep = strstr(u, "://");
    if (!sep)
        return;
    int ssl = (size_t)(sep - u) == 5 && !strncasecmp(u, "imaps", 5);
    const char *a = sep + 3;
    size_t alen = strcspn(a, "/?#");
    const char *at = memchr(a, '@', alen);
    if (at) {
        alen -= (size_t)(at + 1 - a);
        a = at + 1;
    }
    char hostport[HOST_MAX + 16], h[HOST_MAX];
    int port = ssl ? 993 : 143;
    if (alen == 0 || alen >= sizeof hostport)
        return;
    memcpy(hostport, a, alen);
    hostport[alen] = '\0';
    if (split_hostport(hostport, h, sizeof h, &port) < 0) {
        if (alen >= sizeof h || hostport[0] == '[')
            return;
        memcpy(h, hostport, alen + 1);   /* no port: the scheme's */
    }
    if (!text_ok(h, HOST_MAX - 1))
        return;
    snprintf(e->host, sizeof e->host, "%s", h);
    e->port = port;
    e->sock = ssl ? SOCK_SSL : m->tls == TLS_NONE ? SOCK_PLAIN : SOCK_STARTTLS;
    e->known = 1;
}

static const char *tb_socket(enum sock s)
{
    return s == SOCK_SSL ? "SSL" : s == SOCK_STARTTLS ? "STARTTLS" : "plain";
}

/* RFC 4122 version 4 UUID from the kernel's random source. */
static int make_uuid(char out[37])
{
    unsigned char r[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, r, sizeof r);
    int saved = errno;
    close(fd);
    if (n != (ssize_t)sizeof r) {
        errno = n < 0 ? saved : EIO;
        return -1;
    }
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-"
             "%02X%02X%02X%02X%02X%02X", r[0], r[1], r[2], r[3], r[4], r[5],
             r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
    return 0;
}

/* outdir/name.tmp -> write -> fsync -> close -> rename -> fsync dir. */
static int write_file(const char *outdir, const char *name, const struct strbuf *b)
{
    char path[4096], tmp[4200];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", outdir, name) >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    if (sysutil_write_all(fd, b->p, b->len) < 0)
        goto fail;
    if (fsync(fd) < 0)
        goto fail;
    if (close(fd) < 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0)
        goto fail;
    int dfd = open(outdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        /* The files are already complete; a failed directory fsync only
         * weakens durability across a crash, which a re-run repairs. */
        (void)fsync(dfd);
        close(dfd);
    }
    return 0;
fail:;
    int saved = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    errno = saved;
    return -1;
}

static void plist_str(struct strbuf *b, const char *key, const char *v)
{
    sb_printf(b, "      <key>%s</key>\n      <string>", key);
    xml_esc(b, v);
    sb_puts(b, "</string>\n");
}

static void selfcert_read(const struct config *c, const struct endpoint *out,
                          struct selfcert *sc)
{
    memset(sc, 0, sizeof *sc);
    sc->on = out->sock == SOCK_STARTTLS && !c->tls_cert && c->tls_self_signed;
    if (!sc->on)
        return;
    if (!c->state_dir ||
        (size_t)snprintf(sc->src, sizeof sc->src, "%s/" TLS_SELF_CERT, c->state_dir) >= sizeof sc->src) {
        sc->err = ENAMETOOLONG;
        return;
    }
    if (tls_self_read_cert(sc->src, &sc->pem, &sc->pemlen, &sc->der, &sc->derlen, sc->fpr) < 0)
        sc->err = errno;
}

static void selfcert_free(struct selfcert *sc)
{
    free(sc->pem);
    free(sc->der);
    sc->pem = NULL;
    sc->der = NULL;
}

/* The certificate as a profile payload: DER, base64 in <data>. */
static void profile_cert(struct strbuf *b, const struct selfcert *sc, const char *uuid_outer,
                         const char *uuid)
{
    gnutls_datum_t in = { sc->der, (unsigned)sc->derlen }, enc = { NULL, 0 };
    if (gnutls_base64_encode2(&in, &enc) < 0) {
        b->oom = 1;
        return;
    }
    sb_puts(b, "    <dict>\n");
    plist_str(b, "PayloadCertificateFileName", "untild-smtp.cer");
    sb_puts(b, "      <key>PayloadContent</key>\n      <data>\n");
    for (size_t i = 0; i < enc.size; i += 64) {
        size_t n = enc.size - i < 64 ? enc.size - i : 64;
        sb_puts(b, "      ");
        sb_add(b, (const char *)enc.data + i, n);
        sb_puts(b, "\n");
    }
    gnutls_free(enc.data);
    sb_puts(b, "      </data>\n");
    plist_str(b, "PayloadDescription", "The self-signed certificate of untild on this computer "
              "(localhost, 127.0.0.1, ::1), so Mail can send over TLS.");
    plist_str(b, "PayloadDisplayName", "untild loopback certificate");
    sb_printf(b, "      <key>PayloadIdentifier</key>\n      <string>untild.onboard.%s.cert</string>\n",
              uuid_outer);
    plist_str(b, "PayloadType", "com.apple.security.pkcs1");
    plist_str(b, "PayloadUUID", uuid);
    sb_puts(b, "      <key>PayloadVersion</key>\n      <integer>1</integer>\n    </dict>\n");
}

static void autoconfig(struct strbuf *b, const char *domain,
                       const struct endpoint *out, const struct endpoint *in,
                       int auth)
{
    sb_puts(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<!-- Written by untilctl onboard: the outgoing server is untild. -->\n"
               "<clientConfig version=\"1.1\">\n  <emailProvider id=\"");
    xml_esc(b, domain);
    sb_puts(b, "\">\n    <domain>");
    xml_esc(b, domain);
    sb_puts(b, "</domain>\n    <displayName>");
    xml_esc(b, domain);
    sb_puts(b, " via untild</displayName>\n    <displayShortName>untild</displayShortName>\n");
    if (in->known) {
        sb_puts(b, "    <incomingServer type=\"imap\">\n      <hostname>");
        xml_esc(b, in->host);
        sb_printf(b, "</hostname>\n      <port>%d</port>\n      <socketType>%s</socketType>\n"
                     "      <authentication>password-cleartext</authentication>\n"
                     "      <username>%%EMAILADDRESS%%</username>\n    </incomingServer>\n",
                  in->port, tb_socket(in->sock));
    } else {
        /* No values inside comments: "--" there cannot be escaped. */
        sb_puts(b, "    <!-- No incoming server: untild does not know this rep's IMAP\n"
                   "         server; keep the account's own incoming settings. -->\n");
    }
    sb_puts(b, "    <outgoingServer type=\"smtp\">\n      <hostname>");
    xml_esc(b, out->host);
    sb_printf(b, "</hostname>\n      <port>%d</port>\n      <socketType>%s</socketType>\n"
                 "      <authentication>%s</authentication>\n"
                 "      <username>%%EMAILADDRESS%%</username>\n    </outgoingServer>\n"
                 "  </emailProvider>\n</clientConfig>\n",
              out->port, tb_socket(out->sock), auth ? "password-cleartext" : "none");
}

static void profile(struct strbuf *b, const char *rep, const struct endpoint *out,
                    const struct endpoint *in, int auth, const char *uuid_outer,
                    const char *uuid_mail, const struct selfcert *sc, const char *uuid_cert)
{
    sb_puts(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
               "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
               "<!-- Written by untilctl onboard: the outgoing server is untild.\n"
               "     com.apple.mail.managed requires the incoming (IMAP) server keys too. -->\n");
    if (!in->known)
        sb_puts(b, "<!-- EDIT BEFORE INSTALLING: IncomingMailServerHostName, "
                   "IncomingMailServerPortNumber and IncomingMailServerUseSSL are "
                   "placeholders; put your own IMAP server there. -->\n");
    sb_puts(b, "<plist version=\"1.0\">\n<dict>\n  <key>PayloadContent</key>\n  <array>\n    <dict>\n");
    sb_puts(b, "      <key>EmailAccountDescription</key>\n      <string>");
    xml_esc(b, rep);
    sb_puts(b, " via untild</string>\n");
    plist_str(b, "EmailAccountType", "EmailTypeIMAP");
    plist_str(b, "EmailAddress", rep);
    plist_str(b, "IncomingMailServerAuthentication", "EmailAuthPassword");
    plist_str(b, "IncomingMailServerHostName", in->host);
    sb_printf(b, "      <key>IncomingMailServerPortNumber</key>\n      <integer>%d</integer>\n"
                 "      <key>IncomingMailServerUseSSL</key>\n      <%s/>\n",
              in->port, in->sock == SOCK_PLAIN ? "false" : "true");
    plist_str(b, "IncomingMailServerUsername", rep);
    plist_str(b, "OutgoingMailServerAuthentication", auth ? "EmailAuthPassword" : "EmailAuthNone");
    plist_str(b, "OutgoingMailServerHostName", out->host);
    sb_printf(b, "      <key>OutgoingMailServerPortNumber</key>\n      <integer>%d</integer>\n"
                 "      <key>OutgoingMailServerUseSSL</key>\n      <%s/>\n",
              out->port, out->sock == SOCK_PLAIN ? "false" : "true");
    if (auth)
        plist_str(b, "OutgoingMailServerUsername", rep);
    sb_puts(b, "      <key>OutgoingPasswordSameAsIncomingPassword</key>\n      <false/>\n");
    plist_str(b, "PayloadDescription", "Sends mail through untild, which holds mail to contacts you promised not to contact.");
    sb_puts(b, "      <key>PayloadDisplayName</key>\n      <string>Mail via untild (");
    xml_esc(b, rep);
    sb_puts(b, ")</string>\n");
    sb_printf(b, "      <key>PayloadIdentifier</key>\n      <string>untild.onboard.%s.mail</string>\n",
              uuid_outer);
    plist_str(b, "PayloadType", "com.apple.mail.managed");
    plist_str(b, "PayloadUUID", uuid_mail);
    sb_puts(b, "      <key>PayloadVersion</key>\n      <integer>1</integer>\n    </dict>\n");
    if (sc->der)
        profile_cert(b, sc, uuid_outer, uuid_cert);
    sb_puts(b, "  </array>\n");
    sb_puts(b, "  <key>PayloadDescription</key>\n  <string>Mail settings for ");
    xml_esc(b, rep);
    sb_puts(b, ": outgoing mail goes through untild.</string>\n"
               "  <key>PayloadDisplayName</key>\n  <string>untild mail settings (");
    xml_esc(b, rep);
    sb_printf(b, ")</string>\n  <key>PayloadIdentifier</key>\n  <string>untild.onboard.%s</string>\n"
                 "  <key>PayloadRemovalDisallowed</key>\n  <false/>\n"
                 "  <key>PayloadType</key>\n  <string>Configuration</string>\n"
                 "  <key>PayloadUUID</key>\n  <string>%s</string>\n"
                 "  <key>PayloadVersion</key>\n  <integer>1</integer>\n</dict>\n</plist>\n",
              uuid_outer, uuid_outer);
}

static int is_loopback_name(const char *h)
{
    return !strcasecmp(h, "localhost") || !strcmp(h, "127.0.0.1") || !strcmp(h, "::1");
}

/* What to set in each client for the self-signed certificate. */
static void summary_cert(struct strbuf *b, const struct endpoint *out, const struct selfcert *sc,
                         const char *pem)
{
    if (!sc->der) {
        sb_printf(b, "Certificate: untild's own self-signed one, not handed over: cannot read %s (%s).\n"
                     "  untild makes it at its first start: start untild, then run onboard again\n"
                     "  as a user who can read state_dir.\n", sc->src, strerror(sc->err));
        return;
    }
    sb_printf(b, "Certificate: untild's own, self-signed, for localhost, 127.0.0.1 and ::1\n"
                 "  File:            %s\n  SHA-256:         %s\n", pem, sc->fpr);
    sb_puts(b, "  Thunderbird:     accept the certificate exception when it asks, after comparing\n"
               "                   its SHA-256 fingerprint with the one above\n"
               "  Apple Mail:      install " ONBOARD_PROFILE " (it carries the certificate); on iOS\n"
               "                   then trust it in Settings > General > About > Certificate Trust Settings\n");
    sb_printf(b, "  neomutt:         set ssl_ca_certificates_file = \"%s\"\n", pem);
    sb_printf(b, "  msmtp:           tls on, tls_starttls on, tls_trust_file %s\n", pem);
    sb_printf(b, "  git send-email:  sendemail.smtpEncryption tls, sendemail.smtpSSLCertPath %s\n", pem);
    sb_printf(b, "  swaks:           --tls --tls-verify --tls-ca-path %s\n", pem);
    if (!is_loopback_name(out->host))
        sb_printf(b, "  Note: the certificate does not name %s: clients connecting by that name\n"
                     "  must accept it as an exception, or give untild a certificate for it\n"
                     "  ([smtp] tls_cert, tls_key).\n", out->host);
}

static void summary_text(struct strbuf *b, const char *rep, const struct endpoint *out,
                         const struct config *c, const char *outdir, const struct selfcert *sc)
{
    char absdir[PATH_MAX], pem[PATH_MAX + 32];
    static const char *const conn[] = { "none (plain text)", "STARTTLS", "SSL/TLS (implicit TLS)" };
    sb_printf(b, "Outgoing (SMTP) server for %s:\n", rep);
    sb_printf(b, "  Server:          %s\n", out->host);
    sb_printf(b, "  Port:            %d\n", out->port);
    sb_printf(b, "  Connection:      %s\n", conn[out->sock]);
    if (c->auth == AUTH_NONE)
        sb_puts(b, "  Authentication:  none\n");
    else
        sb_printf(b, "  Authentication:  normal password (AUTH PLAIN)\n"
                     "  User name:       %s\n",
                  c->auth == AUTH_UPSTREAM ? rep : "your untild login (passwd file)");
    sb_puts(b, "Keep the incoming (IMAP) server as it is.\n");
    if (!realpath(outdir, absdir))
        snprintf(absdir, sizeof absdir, "%s", outdir);
    snprintf(pem, sizeof pem, "%s/" ONBOARD_CERT, absdir);
    if (sc->on)
        summary_cert(b, out, sc, pem);
    sb_printf(b, "Files written: %s/" ONBOARD_AUTOCONFIG " (Thunderbird), %s/" ONBOARD_PROFILE
                 " (Apple Mail)%s%s\n", outdir, outdir, sc->pem ? ", " : "", sc->pem ? pem : "");
}

/* Write b (ENOMEM when building it failed) as outdir/name and empty it. */
static int put(const char *outdir, const char *name, struct strbuf *b)
{
    int rc = b->oom ? (errno = ENOMEM, -1) : write_file(outdir, name, b);
    int saved = errno;
    sb_free(b);
    errno = saved;
    return rc;
}

static int write_files(const char *outdir, const char *domain, const char *rep,
                       const struct endpoint *out, const struct endpoint *in, int auth,
                       const struct selfcert *sc)
{
    char u1[37], u2[37], u3[37];
    struct strbuf b = { 0 };
    if (make_uuid(u1) < 0 || make_uuid(u2) < 0 || make_uuid(u3) < 0)
        return -1;
    autoconfig(&b, domain, out, in, auth);
    if (put(outdir, ONBOARD_AUTOCONFIG, &b) < 0)
        return -1;
    profile(&b, rep, out, in, auth, u1, u2, sc, u3);
    if (put(outdir, ONBOARD_PROFILE, &b) < 0)
        return -1;
    if (sc->pem) {
        sb_add(&b, sc->pem, sc->pemlen);
        if (put(outdir, ONBOARD_CERT, &b) < 0)
            return -1;
    }
    return 0;
}

int onboard_write(const struct config *c, const char *rep, const char *host,
                  const char *outdir, char **summary)
{
    struct endpoint out = { 0 }, in = { 0 };
    struct selfcert sc;
    struct strbuf b = { 0 };
    char domain[REP_MAX + 1];
    const char *at;

    if (summary)
        *summary = NULL;
    if (!c || !rep || !outdir || !summary || !text_ok(rep, REP_MAX) ||
        !(at = strrchr(rep, '@')) || at == rep || !at[1] ||
        (host && !text_ok(host, HOST_MAX - 1)) || smtp_endpoint(c, host, &out) < 0) {
        errno = EINVAL;
        return -1;
    }
    snprintf(domain, sizeof domain, "%s", at + 1);
    for (char *p = domain; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    imap_endpoint(c, rep, &in);
    selfcert_read(c, &out, &sc);
    int rc = write_files(outdir, domain, rep, &out, &in, c->auth != AUTH_NONE, &sc);
    if (rc == 0) {
        summary_text(&b, rep, &out, c, outdir, &sc);
        if (b.oom || !(*summary = sb_take(&b, NULL))) {
            sb_free(&b);
            errno = ENOMEM;
            rc = -1;
        }
    }
    int saved = errno;
    selfcert_free(&sc);
    errno = saved;
    return rc;
}
