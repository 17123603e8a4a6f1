"""Clients that insist on TLS work out of the box on a personal install
(issue 17, "Also"): with no tls_cert/tls_key, untild makes a self-signed
certificate for localhost, 127.0.0.1 and ::1 in state_dir at its first
start, reuses it afterwards, logs where it is and its SHA-256 fingerprint,
and offers STARTTLS with it. Real clients that verify it against the
certificate as their trust anchor send through the default configuration:
Python's ssl (strict X.509 checks, host name 127.0.0.1), swaks --tls
--tls-verify, msmtp (tls on, tls_trust_file), git send-email
(smtpEncryption tls, smtpSSLCertPath) and neomutt in batch mode
(ssl_force_tls, ssl_ca_certificates_file); the last two are skipped when
not installed.
`untilctl onboard` hands the certificate over (copy, Apple profile payload,
fingerprint). tls_self_signed = no keeps the plain listener of before (the
502 neomutt met); a configured tls_cert wins."""
import hashlib
import os
import plistlib
import re
import shutil
import smtplib
import ssl
import stat
import subprocess
import tempfile
import unittest

from harness import TIMEOUT_SCALE, UNTILCTL, Sink, Untild, make_self_signed, message

TO = "bob@other.example"


def der_fingerprint(pem_path):
    with open(pem_path) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    h = hashlib.sha256(der).hexdigest().upper()
    return der, ":".join(h[i:i + 2] for i in range(0, len(h), 2))


class SelfSigned(unittest.TestCase):
    smtp_extra = ""

    def setUp(self):
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)
        self.u = Untild(self.sink, smtp_extra=self.smtp_extra)
        self.addCleanup(self.u.cleanup)
        self.u.start()
        self.cert = os.path.join(self.u.dir, "state", "smtp-self-signed.pem")
        self.key = os.path.join(self.u.dir, "state", "smtp-self-signed.key")

    def strict_context(self, cafile):
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.verify_flags |= ssl.VERIFY_X509_STRICT   # Python 3.13's default
        return ctx

    def python_send(self, cafile, subject):
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=20 * TIMEOUT_SCALE)
        try:
            s.ehlo("client.example")
            self.assertTrue(s.has_extn("starttls"), s.esmtp_features)
            s.starttls(context=self.strict_context(cafile))   # checks the name 127.0.0.1
            s.ehlo("client.example")
            s.sendmail("rep@example.com", [TO], message(subject=subject, to=TO))
        finally:
            s.close()

    def delivered(self, subject):
        want = ("Subject: %s" % subject).encode()
        self.u.wait_for(lambda: any(want in m.data and TO in m.rcpts for m in self.sink.messages),
                        what="the message %r at the sink" % subject)


class Clients(SelfSigned):
    def test_made_logged_and_reused(self):
        self.assertEqual(stat.S_IMODE(os.stat(self.cert).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(self.key).st_mode), 0o600)
        _, fpr = der_fingerprint(self.cert)
        log = self.u.logtext()
        self.assertRegex(log, r"STARTTLS with the self-signed certificate %s \(made now, .*SHA-256 %s"
                         % (re.escape(self.cert), fpr))
        self.assertEqual(sorted(n for n in os.listdir(os.path.dirname(self.cert)) if "self-signed" in n),
                         ["smtp-self-signed.key", "smtp-self-signed.pem"])   # no temporary left
        self.u.restart()
        self.assertRegex(self.u.logtext(), r"self-signed certificate %s \(reused, .*SHA-256 %s"
                         % (re.escape(self.cert), fpr))
        self.assertEqual(der_fingerprint(self.cert)[1], fpr)
        # A reload (SIGHUP) reuses it too.
        self.assertEqual(self.u.ctl("reload").returncode, 0)
        self.u.wait_for(lambda: self.u.logtext().count("(reused, ") >= 2, what="the reload's certificate line")
        self.assertEqual(der_fingerprint(self.cert)[1], fpr)

    def test_python_starttls_verified(self):
        self.python_send(self.cert, "python strict")
        self.delivered("python strict")
        # The check is real: the system's trust store does not know it.
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=20 * TIMEOUT_SCALE)
        self.addCleanup(s.close)
        with self.assertRaises(ssl.SSLCertVerificationError):
            s.starttls(context=ssl.create_default_context())

    def test_swaks_tls_verify(self):
        r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % self.u.port, "--tls", "--tls-verify",
                            "--tls-ca-path", self.cert, "--from", "rep@example.com", "--to", TO,
                            "--header", "Subject: swaks tls"],
                           capture_output=True, text=True, timeout=30 * TIMEOUT_SCALE)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("TLS started", r.stdout)
        self.delivered("swaks tls")

    def test_msmtp_tls_trust_file(self):
        if not shutil.which("msmtp"):
            self.skipTest("msmtp not installed")
        conf = os.path.join(self.u.dir, "msmtprc")
        with open(conf, "w") as f:
            f.write("account untild\nhost 127.0.0.1\nport %d\nfrom rep@example.com\nauth off\n"
                    "tls on\ntls_starttls on\ntls_trust_file %s\naccount default : untild\n"
                    % (self.u.port, self.cert))
        os.chmod(conf, 0o600)
        r = subprocess.run(["msmtp", "-C", conf, TO], input=message(subject="msmtp tls", to=TO),
                           capture_output=True, timeout=30 * TIMEOUT_SCALE)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.delivered("msmtp tls")

    def test_neomutt_batch(self):
        if not shutil.which("neomutt"):
            self.skipTest("neomutt not installed (apt-get install neomutt)")
        home = tempfile.mkdtemp(prefix="untild-neomutt-")
        self.addCleanup(shutil.rmtree, home, True)
        rc = os.path.join(home, "muttrc")
        with open(rc, "w") as f:
            # ssl_force_tls: what a recent neomutt does by default.
            f.write('set from = "rep@example.com"\nset use_from = yes\nset hostname = "example.com"\n'
                    'set smtp_url = "smtp://127.0.0.1:%d"\nset ssl_starttls = yes\nset ssl_force_tls = yes\n'
                    'set ssl_ca_certificates_file = "%s"\nset certificate_file = "%s/certificates"\n'
                    'set record = ""\nset copy = no\nset folder = "%s"\nset spoolfile = ""\n'
                    % (self.u.port, self.cert, home, home))
        env = dict(os.environ, HOME=home, TERM="dumb")
        r = subprocess.run(["neomutt", "-n", "-F", rc, "-s", "neomutt tls", TO], input=b"Hello.\n",
                           capture_output=True, env=env, timeout=30 * TIMEOUT_SCALE)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr + self.u.logtext()[-2000:].encode())
        self.delivered("neomutt tls")

    def test_git_send_email(self):
        exec_path = subprocess.run(["git", "--exec-path"], capture_output=True, text=True).stdout.strip()
        if not os.path.exists(os.path.join(exec_path, "git-send-email")):
            self.skipTest("git send-email not installed (apt-get install git-email)")
        home = tempfile.mkdtemp(prefix="untild-git-")
        self.addCleanup(shutil.rmtree, home, True)
        patch = os.path.join(home, "0001-tls.patch")
        with open(patch, "w") as f:
            f.write("From 0123456789abcdef0123456789abcdef01234567 Mon Sep 17 00:00:00 2001\n"
                    "From: Rep <rep@example.com>\nDate: Wed, 2 Dec 2026 07:00:00 +0000\n"
                    "Subject: [PATCH] git tls\n\nHello.\n---\n")
        env = dict(os.environ, HOME=home, GIT_CONFIG_NOSYSTEM="1", GIT_COMMITTER_NAME="Rep",
                   GIT_COMMITTER_EMAIL="rep@example.com", GIT_AUTHOR_NAME="Rep",
                   GIT_AUTHOR_EMAIL="rep@example.com")
        r = subprocess.run(["git", "-c", "sendemail.smtpServer=127.0.0.1",
                            "-c", "sendemail.smtpServerPort=%d" % self.u.port,
                            "-c", "sendemail.smtpEncryption=tls",
                            "-c", "sendemail.smtpSSLCertPath=%s" % self.cert,
                            "send-email", "--from=rep@example.com", "--to=%s" % TO, "--confirm=never",
                            "--suppress-cc=all", "--no-validate", patch],
                           capture_output=True, text=True, env=env, cwd=home, timeout=30 * TIMEOUT_SCALE)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.delivered("[PATCH] git tls")

    def test_onboard_hands_it_over(self):
        out = tempfile.mkdtemp(prefix="untild-onboard-")
        self.addCleanup(shutil.rmtree, out, True)
        r = subprocess.run([UNTILCTL, "-c", self.u.conf, "onboard", "rep@example.com", "--out", out],
                           capture_output=True, text=True, timeout=30 * TIMEOUT_SCALE)
        self.assertEqual(r.returncode, 0, r.stderr)
        der, fpr = der_fingerprint(self.cert)
        copy = os.path.join(out, "untild-smtp.pem")
        self.assertIn(fpr, r.stdout)
        self.assertIn("ssl_ca_certificates_file = \"%s\"" % copy, r.stdout)
        self.assertIn("Connection:      STARTTLS", r.stdout)
        with open(copy) as a, open(self.cert) as b:
            self.assertEqual(a.read(), b.read())
        with open(os.path.join(out, "untild.mobileconfig"), "rb") as f:
            prof = plistlib.load(f)
        certs = [p for p in prof["PayloadContent"] if p["PayloadType"] == "com.apple.security.pkcs1"]
        self.assertEqual(len(certs), 1)
        self.assertEqual(certs[0]["PayloadContent"], der)
        self.assertEqual(len({p["PayloadUUID"] for p in prof["PayloadContent"]} | {prof["PayloadUUID"]}), 3)
        # What a client does with it: trust the copy and send.
        self.python_send(copy, "onboarded")
        self.delivered("onboarded")


class Off(SelfSigned):
    smtp_extra = "tls_self_signed = no"

    def test_plain_as_before(self):
        self.assertFalse(os.path.exists(self.cert))
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=20 * TIMEOUT_SCALE)
        self.addCleanup(s.close)
        s.ehlo("client.example")
        self.assertFalse(s.has_extn("starttls"))
        self.assertEqual(s.docmd("STARTTLS")[0], 502)
        self.assertNotIn("self-signed", self.u.logtext())


class Configured(SelfSigned):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="untild-tlscert-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.own, key = make_self_signed(self.tmp)
        self.smtp_extra = "tls_cert = %s\ntls_key = %s" % (self.own, key)
        super().setUp()

    def test_configured_certificate_wins(self):
        self.assertFalse(os.path.exists(self.cert))
        self.assertNotIn("self-signed", self.u.logtext())
        self.python_send(self.own, "own cert")
        self.delivered("own cert")


if __name__ == "__main__":
    unittest.main()
