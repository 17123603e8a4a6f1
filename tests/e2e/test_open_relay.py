"""No open relay: a client on another host (a network namespace with a veth
pair, made by this test) that does not authenticate cannot relay or hold
anything; AUTH is refused before TLS; after STARTTLS + AUTH it can send.
Also: auth = none on a non-loopback listener is refused at start-up."""
import crypt
import os
import random
import subprocess
import unittest

from harness import Sink, Untild, free_port

NS = "untild-e2e-%d" % os.getpid()
HOST_IF, NS_IF = "ue%d" % (os.getpid() % 100000), "un%d" % (os.getpid() % 100000)
NET = "10.231.%d" % random.randint(1, 250)
HOST_IP, NS_IP = NET + ".1", NET + ".2"

CLIENT = r'''
import smtplib, ssl, sys
port, mode = int(sys.argv[1]), sys.argv[2]
s = smtplib.SMTP("%s", port, timeout=10)
s.ehlo("remote.example")
if mode == "noauth":
    code, msg = s.mail("rep@example.com")
    print(code)
    code, msg = s.rcpt("jane@acme.com")
    print(code)
elif mode == "auth-plain-text":
    import base64
    print("AUTH" in s.esmtp_features and "AUTHOFFERED" or "NOAUTH")
    code, msg = s.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0alice\0secret").decode())
    print(code)
elif mode == "tls-auth":
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s.starttls(context=ctx)
    s.ehlo("remote.example")
    s.login("alice", "secret")
    s.sendmail("alice@example.com", ["bob@other.example"], b"Subject: hi\r\n\r\nhello\r\n")
    print("SENT")
s.quit()
''' % HOST_IP


def sh(*args, check=True):
    return subprocess.run(list(args), capture_output=True, text=True, check=check)


def netns_available():
    try:
        sh("ip", "netns", "add", NS + "-probe")
        sh("ip", "netns", "del", NS + "-probe")
        return True
    except (subprocess.CalledProcessError, FileNotFoundError):
        return False


@unittest.skipUnless(os.geteuid() == 0 and netns_available(), "needs root and ip netns")
class OpenRelay(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        sh("ip", "netns", "add", NS)
        sh("ip", "link", "add", HOST_IF, "type", "veth", "peer", "name", NS_IF)
        sh("ip", "link", "set", NS_IF, "netns", NS)
        sh("ip", "addr", "add", HOST_IP + "/24", "dev", HOST_IF)
        sh("ip", "link", "set", HOST_IF, "up")
        sh("ip", "netns", "exec", NS, "ip", "addr", "add", NS_IP + "/24", "dev", NS_IF)
        sh("ip", "netns", "exec", NS, "ip", "link", "set", NS_IF, "up")
        sh("ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up")

    @classmethod
    def tearDownClass(cls):
        sh("ip", "link", "del", HOST_IF, check=False)
        sh("ip", "netns", "del", NS, check=False)

    def setUp(self):
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)
        port = free_port()
        self.port = port
        u = Untild(self.sink, windows="jane@acme.com 2027-07-01\n")
        passwd = os.path.join(u.dir, "passwd")
        with open(passwd, "w") as f:
            f.write("alice:%s\n" % crypt.crypt("secret", crypt.mksalt(crypt.METHOD_SHA512)))
        cert, key = os.path.join(u.dir, "cert.pem"), os.path.join(u.dir, "key.pem")
        sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=untild.test",
           "-days", "2", "-keyout", key, "-out", cert)
        with open(u.conf) as f:
            conf = f.read()
        conf = conf.replace("listen = 127.0.0.1:%d" % u.port,
                            "listen = 127.0.0.1:%d, %s:%d" % (u.port, HOST_IP, port))
        conf = conf.replace("auth = none", "auth = passwd:%s\ntls_cert = %s\ntls_key = %s" % (passwd, cert, key))
        with open(u.conf, "w") as f:
            f.write(conf)
        self.u = u
        self.addCleanup(u.cleanup)
        u.start()

    def remote(self, mode):
        r = subprocess.run(["ip", "netns", "exec", NS, "/usr/bin/python3", "-c", CLIENT, str(self.port), mode],
                           capture_output=True, text=True, timeout=30)
        return r.stdout.split(), r.stderr

    def test_unauthenticated_remote_cannot_relay_or_hold(self):
        out, err = self.remote("noauth")
        self.assertEqual(out[:1], ["530"], err)
        self.assertEqual(self.u.spool_files(), [])
        self.assertEqual(self.sink.messages, [])

    def test_auth_refused_before_tls_off_loopback(self):
        out, err = self.remote("auth-plain-text")
        self.assertEqual(out[0], "NOAUTH", err)      # not even offered before TLS
        self.assertEqual(out[1], "538", err)         # RFC 4954: encryption required
        self.assertEqual(self.sink.messages, [])

    def test_tls_then_auth_relays(self):
        out, err = self.remote("tls-auth")
        self.assertIn("SENT", out, err + self.u.logtext()[-2000:])
        got = self.sink.wait(1)
        self.assertEqual([m.rcpts for m in got if "bob@other.example" in m.rcpts], [["bob@other.example"]])


class NoneAuthOffLoopback(unittest.TestCase):
    def test_config_refuses_open_listener(self):
        u = Untild(None)
        self.addCleanup(u.cleanup)
        with open(u.conf) as f:
            conf = f.read()
        with open(u.conf, "w") as f:
            f.write(conf.replace("listen = 127.0.0.1:%d" % u.port, "listen = 0.0.0.0:%d" % u.port))
        r = subprocess.run([os.path.join(os.environ.get("UNTILD_BUILD", "build"), "untild"), "-t", "-c", u.conf],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"untild\.conf:\d+: .*")


if __name__ == "__main__":
    unittest.main()
