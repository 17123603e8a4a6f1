#!/bin/sh
# Install untild's build and test dependencies on Debian 12 (as root).
set -e
if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing build dependencies; run as root (or: sudo make deps)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
apt-get install -y -qq --no-install-recommends \
    build-essential pkg-config ca-certificates \
    libcurl4-gnutls-dev libical-dev libetpan-dev check libgnutls28-dev gnutls-bin \
    libsqlite3-dev libidn2-dev libsystemd-dev libcrypt-dev libmicrohttpd-dev libxml2-dev libjson-c-dev libgmime-3.0-dev \
    postfix swaks dovecot-imapd radicale python3 python3-aiosmtpd python3-hypothesis msmtp \
    python3-caldav python3-yaml curl vdirsyncer neomutt git-email libmailtools-perl \
    libxml2-utils mandoc man-db groff-base systemd openssl iproute2 procps clang libclang-rt-14-dev valgrind \
    debhelper lintian libpq-dev postgresql-15 chromium chromium-driver python3-selenium >/dev/null
