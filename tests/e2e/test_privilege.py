"""Privilege end-to-end tests (issues 4 and 6): untild as the unprivileged
service user (started by runuser, as systemd's User= would, or as root with
[daemon] user = ...), and secrets with loose permissions refused."""
import os
import pwd
import shutil
import signal
import smtplib
import socket
import subprocess
import time
import unittest

from harness import UNTILD, Sink, Untild, message

USER = "untild-e2e"
_created_user = False


def setUpModule():
    global _created_user
    if os.geteuid() != 0:
        return
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "-M", "-U", "-s", "/usr/sbin/nologin", USER], check=True)
        _created_user = True


def tearDownModule():
    if _created_user:
        subprocess.run(["userdel", USER], check=False)


def proc_uids(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:]]
            # Gid follows Uid; callers only need the uids.
    return None


def proc_gids(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Gid:"):
                return [int(x) for x in line.split()[1:]]
    return None


def daemon_pid(wrapper_pid):
    """runuser forks and waits: the daemon is its child (or itself)."""
    try:
        with open("/proc/%d/task/%d/children" % (wrapper_pid, wrapper_pid)) as f:
            kids = [int(x) for x in f.read().split()]
    except OSError:
        kids = []
    for k in kids:
        try:
            if os.readlink("/proc/%d/exe" % k) == os.path.realpath(UNTILD):
                return k
        except OSError:
            pass
    return wrapper_pid


class PrivUntild(Untild):
    """Untild started through a command prefix (runuser ...)."""
    prefix = []

    def start(self, wait=True):
        ready = self.logtext().count("untild ready")
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen(self.prefix + [UNTILD, "-v", "--test-clock", "-c", self.conf],
                                     stdout=self.logf, stderr=self.logf)
        end = time.time() + 10
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("untild exited %s:\n%s" % (self.proc.returncode, self.logtext()))
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                if os.path.exists(os.path.join(self.dir, "control.sock")) and \
                        self.logtext().count("untild ready") > ready:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        else:
            raise RuntimeError("untild did not start:\n" + self.logtext())
        return self

    def set_conf_daemon(self, text):
        """Add keys to the [daemon] section of the generated config."""
        with open(self.conf) as f:
            conf = f.read()
        conf = conf.replace("owner = rep@example.com\n", "owner = rep@example.com\n" + text, 1)
        with open(self.conf, "w") as f:
            f.write(conf)


def owned_by(path, uid):
    """Every file and directory under path is owned by uid; returns the
    ones that are not."""
    bad = []
    for root, dirs, files in os.walk(path):
        for n in [root] + [os.path.join(root, x) for x in dirs + files]:
            if os.lstat(n).st_uid != uid:
                bad.append(n)
    return bad


@unittest.skipUnless(os.geteuid() == 0, "needs root to create and switch users")
class Unprivileged(unittest.TestCase):
    windows = 'jane@acme.com 2027-07-01 reason="Lease ends in July"\n'

    def setUp(self):
        self.pw = pwd.getpwnam(USER)
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)
        self.u = PrivUntild(self.sink, windows=self.windows)
        self.addCleanup(self.u.cleanup)
        self.addCleanup(self.no_sanitizer_reports)

    def no_sanitizer_reports(self):
        self.u.stop()
        log = self.u.logtext()
        for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            self.assertNotIn(bad, log, log[-4000:])

    def check_running_as_user(self):
        pid = daemon_pid(self.u.proc.pid)
        self.assertEqual(proc_uids(pid), [self.pw.pw_uid] * 4, "Uid line of untild")
        self.assertEqual(proc_gids(pid), [self.pw.pw_gid] * 4, "Gid line of untild")
        # The listener works: hold a message, relay another.
        self.u.set_clock("2027-01-10T10:00Z")
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=20)
        self.addCleanup(s.close)
        s.sendmail("rep@example.com", ["jane@acme.com"], message())
        s.sendmail("rep@example.com", ["bob@other.com"], message(to="bob@other.com"))
        s.quit()
        self.u.wait_for(lambda: self.sink.for_rcpt("bob@other.com"), what="relayed mail")
        spool = self.u.spool_files()
        self.assertEqual(len(spool), 1)
        state = os.path.join(self.u.dir, "state")
        self.assertEqual(owned_by(state, self.pw.pw_uid), [])
        held = os.path.join(state, "spool", "held", spool[0])
        self.assertEqual(os.stat(held).st_uid, self.pw.pw_uid)
        self.assertEqual(os.stat(held).st_mode & 0o077, 0, "held mail readable by others")
        # The control socket answers (root is admin) and reload works as the user.
        self.assertEqual(self.u.ctl("check", "jane@acme.com").returncode, 3)
        self.assertEqual(self.u.ctl("reload").returncode, 0)
        return pid

    def test_started_by_runuser(self):
        # As systemd's User=untild with StateDirectory=: the directories are the user's.
        shutil.chown(self.u.dir, USER, self.pw.pw_gid)
        self.u.prefix = ["runuser", "-u", USER, "--"]
        self.u.start()
        self.check_running_as_user()
        self.assertNotIn("running as root", self.u.logtext())
        # SIGTERM reaches it through runuser and it stops cleanly.
        self.u.stop()
        self.assertFalse(os.path.exists(os.path.join(self.u.dir, "control.sock")))

    def test_read_only_system_like_the_unit(self):
        # As the unit runs it: User=untild and ProtectSystem=strict, i.e.
        # everything read-only but its state and runtime directories (here
        # the test directory, holding both). A private mount namespace makes
        # / read-only for the daemon alone.
        shutil.chown(self.u.dir, USER, self.pw.pw_gid)
        script = ('mount --bind "$0" "$0" && mount --rbind / / && mount -o remount,bind,ro / '
                  '&& exec runuser -u %s -- "$@"' % USER)
        self.u.prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, self.u.dir]
        self.u.start()
        pid = self.check_running_as_user()
        # really read-only outside its directories
        with open("/proc/%d/mounts" % pid) as f:
            root = [l.split() for l in f if l.split()[1] == "/"]
        self.assertTrue(any("ro" in l[3].split(",") for l in root), root)
        self.assertNotIn(": error:", self.u.logtext())

    def test_root_with_daemon_user(self):
        # Started as root, no state dir yet, in a root-owned directory.
        self.u.set_conf_daemon("user = %s\n" % USER)
        self.assertFalse(os.path.exists(os.path.join(self.u.dir, "state")))
        self.u.start()
        self.assertIn("running as %s" % USER, self.u.logtext())
        pid = self.check_running_as_user()
        self.assertEqual(pid, self.u.proc.pid)
        st = os.stat(os.path.join(self.u.dir, "state"))
        self.assertEqual(st.st_uid, self.pw.pw_uid)
        self.assertEqual(st.st_mode & 0o777, 0o700)
        # Restart keeps working (the state now exists and is the user's).
        self.u.restart()
        self.assertEqual(len(self.u.spool_files()), 1)
        self.assertEqual(proc_uids(self.u.proc.pid)[0], self.pw.pw_uid)

    def test_root_with_unknown_user_refused(self):
        self.u.set_conf_daemon("user = no-such-user-e2e\n")
        r = subprocess.run([UNTILD, "-c", self.u.conf], capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no-such-user-e2e", r.stderr)


class Secrets(unittest.TestCase):
    def setUp(self):
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)
        self.u = Untild(self.sink)
        self.addCleanup(self.u.cleanup)
        self.pwfile = os.path.join(self.u.dir, "upstream.pass")
        with open(self.pwfile, "w") as f:
            f.write("s3cret\n")
        with open(self.u.conf) as f:
            conf = f.read()
        conf = conf.replace("tls = none\n", "tls = none\nusername = rep@example.com\npassword_file = %s\n"
                            % self.pwfile, 1)
        with open(self.u.conf, "w") as f:
            f.write(conf)

    def test_world_readable_password_file_refused(self):
        os.chmod(self.pwfile, 0o644)
        for argv in ([UNTILD, "-t", "-c", self.u.conf], [UNTILD, "-c", self.u.conf]):
            r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
            self.assertEqual(r.returncode, 1, argv)
            self.assertIn(self.u.conf + ":", r.stderr)
            self.assertIn(self.pwfile, r.stderr)
            self.assertIn("password_file", r.stderr)
            self.assertNotIn("s3cret", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.u.dir, "control.sock")))

    def test_private_password_file_accepted(self):
        os.chmod(self.pwfile, 0o600)
        r = subprocess.run([UNTILD, "-t", "-c", self.u.conf], capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.u.start()
        self.assertIsNone(self.u.proc.poll())


if __name__ == "__main__":
    unittest.main()
