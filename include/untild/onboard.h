/* onboard.h - mail client settings for a rep: a Thunderbird autoconfig
 * file and an Apple configuration profile that point the client's outgoing
 * server at untild, plus the same settings as text to type by hand.
 * `untilctl onboard REP [--host H] [--out DIR]` calls it. */
#ifndef UNTILD_ONBOARD_H
#define UNTILD_ONBOARD_H

struct config;

#define ONBOARD_AUTOCONFIG "config-v1.1.xml"
#define ONBOARD_PROFILE "untild.mobileconfig"
/* A copy of untild's self-signed loopback certificate (tls_self.h), for
 * the clients' trust settings; written only when the listener offers it. */
#define ONBOARD_CERT "untild-smtp.pem"

/* Write outdir/config-v1.1.xml and outdir/untild.mobileconfig for rep (an
 * address, "local@domain"). host is the name clients use to reach untild;
 * NULL: the host of the first [smtp] listen address (or [smtp] hostname
 * when that address is a wildcard). Each file is written to a temporary
 * name, fsynced and renamed into place. When the listener offers STARTTLS
 * with the self-signed certificate (no tls_cert, tls_self_signed), it is
 * read from state_dir, copied to outdir/untild-smtp.pem, put in the profile
 * and its path and fingerprint are in the summary (or why it could not be
 * read: the other files are written all the same).
 * Returns 0 and *summary (malloc'd, human-readable SMTP settings), or -1
 * with errno set (EINVAL: bad rep or host) and *summary NULL. */
int onboard_write(const struct config *c, const char *rep, const char *host,
                  const char *outdir, char **summary);

#endif
