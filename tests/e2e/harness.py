"""End-to-end harness: real daemon, real peers, all on 127.0.0.1.

- Sink: an aiosmtpd SMTP server in this process (its own thread) that
  records every envelope and the exact bytes received.
- Untild: the built daemon on a temp config with free ports, its own
  state dir and control socket, started with --test-clock so tests can
  move time; stopped by PID in tearDown.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from aiosmtpd.controller import Controller

BUILD = os.environ.get("UNTILD_BUILD", os.path.abspath("build"))
UNTILD = os.path.join(BUILD, "untild")
UNTILCTL = os.path.join(BUILD, "untilctl")

# Optional wrapper for the daemon (make valgrind-check), e.g.
#   UNTILD_WRAPPER="valgrind --error-exitcode=99 --leak-check=full"
# "{dir}" in it becomes the test's temp dir. Under valgrind the harness adds
# --log-file={dir}/valgrind.%p.log (unless given) and Untild.cleanup fails
# the test if a log reports errors. Everything slows down a lot under
# valgrind, so waits are scaled by TIMEOUT_SCALE (UNTILD_TIMEOUT_SCALE,
# default 1, or 8 under valgrind).
WRAPPER = os.environ.get("UNTILD_WRAPPER", "").strip()
UNDER_VALGRIND = os.path.basename(WRAPPER.split()[0]).startswith("valgrind") if WRAPPER else False
TIMEOUT_SCALE = float(os.environ.get("UNTILD_TIMEOUT_SCALE", "0") or 0) or (8.0 if UNDER_VALGRIND else 1.0)


def wrapper_argv(workdir):
    """The wrapper as an argv prefix for a daemon whose temp dir is workdir."""
    import shlex
    if not WRAPPER:
        return []
    argv = [a.replace("{dir}", workdir) for a in shlex.split(WRAPPER)]
    if UNDER_VALGRIND and not any(a.startswith("--log-file") for a in argv):
        argv.insert(1, "--log-file=%s/valgrind.%%p.log" % workdir)
    return argv


def valgrind_errors(workdir):
    """(log name, text) of each valgrind log in workdir that reports an
    error (ERROR SUMMARY > 0, which counts definite leaks when run with
    --errors-for-leak-kinds=definite, and "definitely lost" > 0 bytes)."""
    import glob
    import re
    bad = []
    for path in sorted(glob.glob(os.path.join(workdir, "valgrind.*.log"))):
        try:
            with open(path, errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        errs = [int(n) for n in re.findall(r"ERROR SUMMARY: ([0-9,]+) errors", text.replace(",", ""))]
        lost = [int(n) for n in re.findall(r"definitely lost: ([0-9,]+) bytes", text.replace(",", ""))]
        if any(errs) or any(lost):
            bad.append((os.path.basename(path), text))
    return bad


_HANDED_OUT = set()


def free_port():
    """A port free now that this process has not handed out before: the
    kernel may give the same ephemeral port to two bind(0) calls once the
    first socket is closed, and a test that asks for two ports (the SMTP
    listener and the CalDAV proxy) would then make the daemon collide with
    itself (seen once in CI)."""
    for _ in range(1000):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no free port left that was not handed out before")


class Envelope:
    def __init__(self, mail_from, rcpts, data):
        self.mail_from = mail_from
        self.rcpts = rcpts
        self.data = data
        self.t = time.time()        # when the sink accepted it (wall clock)


class _Handler:
    def __init__(self, sink):
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.sink.lock:
            self.sink.rcpt_attempts[address] = self.sink.rcpt_attempts.get(address, 0) + 1
            self.sink.cond.notify_all()
        code = self.sink.rcpt_reply(address)
        if code:
            return code
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        import asyncio
        # A slow upstream: the whole message is here, the final reply waits
        # until the test opens the gate (the transaction is "in flight").
        if self.sink.stall_for & set(envelope.rcpt_tos):
            with self.sink.lock:
                self.sink.stalled += 1
                self.sink.cond.notify_all()
            try:
                while not self.sink.stall_gate.is_set():
                    await asyncio.sleep(0.02)
            except asyncio.CancelledError:     # the client gave up on it
                with self.sink.lock:
                    self.sink.stall_settled += 1
                    self.sink.cond.notify_all()
                raise
            try:
                return self._data(envelope)
            finally:
                with self.sink.lock:
                    self.sink.stall_settled += 1
                    self.sink.cond.notify_all()
        return self._data(envelope)

    def _data(self, envelope):
        if self.sink.data_reply:
            return self.sink.data_reply
        with self.sink.lock:
            self.sink.messages.append(Envelope(envelope.mail_from, list(envelope.rcpt_tos),
                                               envelope.original_content))
            self.sink.cond.notify_all()
        return "250 2.0.0 Ok: queued as SINK%d" % len(self.sink.messages)


class Sink:
    """A real SMTP server (aiosmtpd) that records what it receives."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.messages = []
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.reject = {}          # address -> "550 ..." reply (or "451 ...")
        self.data_reply = None    # e.g. "451 4.3.0 try later"
        self.rcpt_attempts = {}   # address -> RCPT commands seen for it
        self.stall_for = set()    # DATA with one of these rcpts waits for stall_gate
        self.stall_gate = threading.Event()
        self.stalled = 0          # DATA commands that waited (or wait) at the gate
        self.stall_settled = 0    # ... and have been answered (or abandoned by the client)
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port,
                                     decode_data=False, enable_SMTPUTF8=True,
                                     data_size_limit=100 * 1024 * 1024)

    def rcpt_reply(self, address):
        return self.reject.get(address)

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()

    def restart(self):
        """Listen again on the same port after stop() (a stopped aiosmtpd
        Controller cannot be started twice)."""
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port,
                                     decode_data=False, enable_SMTPUTF8=True,
                                     data_size_limit=100 * 1024 * 1024)
        return self.start()

    def wait(self, n, timeout=10):
        end = time.time() + timeout * TIMEOUT_SCALE
        with self.lock:
            while len(self.messages) < n and time.time() < end:
                self.cond.wait(0.1)
            return list(self.messages)

    def for_rcpt(self, addr):
        with self.lock:
            return [m for m in self.messages if addr in m.rcpts]

    def stall(self, *addrs):
        """Slow upstream: DATA for a message to any of addrs gets its final
        reply only after unstall() (wait for .stalled to see it waiting)."""
        self.stall_gate.clear()
        self.stall_for = set(addrs)

    def unstall(self):
        self.stall_for = set()
        self.stall_gate.set()

    def wait_stalled(self, n=1, timeout=10):
        end = time.time() + timeout * TIMEOUT_SCALE
        with self.lock:
            while self.stalled < n and time.time() < end:
                self.cond.wait(0.1)
            if self.stalled < n:
                raise AssertionError("no DATA reached the stalled sink")

    def wait_stall_settled(self, n=1, timeout=10):
        end = time.time() + timeout * TIMEOUT_SCALE
        with self.lock:
            while self.stall_settled < n and time.time() < end:
                self.cond.wait(0.1)
            if self.stall_settled < n:
                raise AssertionError("the stalled DATA was never answered")


BASE_CONF = """
[daemon]
state_dir = {dir}/state
control_socket = {dir}/control.sock
timezone = {tz}
owner = rep@example.com
[smtp]
listen = 127.0.0.1:{port}
auth = {auth}
max_message_size = {max_size}
{smtp_extra}
[upstream]
{upstream}
[policy]
default_action = hold
split_recipients = {split}
release_time = {release_time}
release_on_weekends = {weekends}
{policy_extra}
[windows]
files = {dir}/windows.d/*.windows
{extra}
"""


class Untild:
    def __init__(self, sink=None, windows="", split="no", release_time="off", tz="UTC",
                 max_size=10 * 1024 * 1024, extra="", smtp_extra="", policy_extra="",
                 upstream=None, workdir=None, weekends="yes",
                 auth="none"):
        self.dir = workdir or tempfile.mkdtemp(prefix="untild-e2e-")
        os.chmod(self.dir, 0o755)
        os.makedirs(os.path.join(self.dir, "windows.d"), exist_ok=True)
        self.port = free_port()
        self.sink = sink
        if upstream is None:
            upstream = ("url = smtp://127.0.0.1:%d\ntls = none\nconnections = 4\ntimeout = 10" % sink.port
                        if sink else "maildir = %s/outbox" % self.dir)
        self.conf = os.path.join(self.dir, "untild.conf")
        with open(self.conf, "w") as f:
            f.write(BASE_CONF.format(dir=self.dir, port=self.port, tz=tz, split=split,
                                     release_time=release_time, max_size=max_size, extra=extra,
                                     smtp_extra=smtp_extra, policy_extra=policy_extra,
                                     upstream=upstream, weekends=weekends, auth=auth))
        self.write_windows(windows)
        self.proc = None
        self.log = os.path.join(self.dir, "untild.log")

    def write_windows(self, text, name="test.windows"):
        with open(os.path.join(self.dir, "windows.d", name), "w") as f:
            f.write(text)

    def start(self, wait=True):
        # Ready is one state: the SMTP port listens, control.sock is renamed
        # into place and "untild ready" is logged, all at the end of
        # start-up. After a kill -9 the old control.sock file is still
        # there, so the log line (a new one) is what says this daemon is up.
        ready = self.logtext().count("untild ready")
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen(wrapper_argv(self.dir) + [UNTILD, "-v", "--test-clock", "-c", self.conf],
                                     stdout=self.logf, stderr=self.logf)
        if wait:
            end = time.time() + 10 * TIMEOUT_SCALE
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

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10 * TIMEOUT_SCALE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "logf", None):
            self.logf.close()
            self.logf = None

    def kill(self):
        self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        return self.start()

    def sanitizer_errors(self):
        """Lines where ASan/UBSan/LSan complained (builds with sanitizers)."""
        return [l for l in self.logtext().splitlines()
                if "AddressSanitizer" in l or "LeakSanitizer" in l or "runtime error:" in l]

    def cleanup(self):
        self.stop()
        errs = self.sanitizer_errors()
        log = self.logtext()
        vg = valgrind_errors(self.dir) if UNDER_VALGRIND else []
        shutil.rmtree(self.dir, ignore_errors=True)
        if errs:
            raise AssertionError("sanitizer errors in untild:\n" + log[-6000:])
        if vg:
            raise AssertionError("valgrind errors in untild:\n" +
                                 "\n".join("--- %s ---\n%s" % (n, t[-20000:]) for n, t in vg))

    def logtext(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def ctl(self, *args, check=None):
        r = subprocess.run([UNTILCTL, "-s", os.path.join(self.dir, "control.sock")] + list(args),
                           capture_output=True, text=True, timeout=20 * TIMEOUT_SCALE)
        if check is not None and r.returncode != check:
            raise AssertionError("untilctl %s: exit %d\n%s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def set_clock(self, when):
        self.ctl("debug", "clock", "set", when, check=0)

    def spool_files(self, state="held", notices=False):
        """Spool file names in one state directory. Notices to the rep are
        spool entries too ("kind: 1"); they are left out unless asked."""
        d = os.path.join(self.dir, "state", "spool", state)
        names = sorted(os.listdir(d)) if os.path.isdir(d) else []
        # A file gone between the listing and the look (a notice delivered
        # meanwhile) is not counted: it is not in the spool any more.
        return [n for n in names if notices and os.path.exists(os.path.join(d, n))
                or not notices and self.is_notice(os.path.join(d, n)) is False]

    @staticmethod
    def is_notice(path):
        """True, False, or None when the file is gone."""
        try:
            with open(path, "rb") as f:
                head = f.read(4096)
        except FileNotFoundError:
            return None
        except OSError:
            return None
        return b"\nkind: 1\n" in head.split(b"\n\n", 1)[0] + b"\n"

    def held_json(self):
        """The held list as parsed JSON (untilctl --json held list)."""
        import json
        return json.loads(self.ctl("--json", "held", "list", check=0).stdout)

    def windows_json(self):
        import json
        return json.loads(self.ctl("--json", "window", "list", check=0).stdout)

    def audit_rows(self):
        """(event, rep, detail) of every audit row, oldest first."""
        import sqlite3
        db = sqlite3.connect(os.path.join(self.dir, "state", "untild.db"))
        try:
            return db.execute("SELECT event, rep, detail FROM audit ORDER BY rowid").fetchall()
        finally:
            db.close()

    def wait_for(self, pred, timeout=10, what="condition"):
        end = time.time() + timeout * TIMEOUT_SCALE
        while time.time() < end:
            if pred():
                return True
            time.sleep(0.05)
        raise AssertionError("timed out waiting for %s\n--- untild log ---\n%s" % (what, self.logtext()[-4000:]))


class GateTest(unittest.TestCase):
    """Base: a sink and an untild, cleaned up after each test."""
    windows = ""
    split = "no"
    release_time = "off"
    untild_kwargs = {}

    def setUp(self):
        self.sink = Sink().start()
        self.addCleanup(self.sink.stop)
        self.u = Untild(self.sink, windows=self.windows, split=self.split,
                        release_time=self.release_time, **self.untild_kwargs)
        self.addCleanup(self.u.cleanup)
        self.u.start()

    def smtp(self):
        import smtplib
        s = smtplib.SMTP("127.0.0.1", self.u.port, timeout=20 * TIMEOUT_SCALE)
        self.addCleanup(lambda: s.close())
        return s


def message(subject="Hello", body="Hi there.\r\n", extra_headers="", frm="rep@example.com",
            to="jane@acme.com"):
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@example.com>\r\n%s\r\n%s"
            % (frm, to, subject, "m%d.%d" % (os.getpid(), int(time.time() * 1e6)), extra_headers, body)).encode()


# ---- Postfix (for the policy delegation service) --------------------------

POSTFIX_MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

POSTFIX_MAIN_CF = """\
compatibility_level = 3.6
meta_directory = /etc/postfix
queue_directory = {dir}/queue
data_directory = {dir}/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
myhostname = postfix.test.invalid
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{sink_port}
alias_maps =
alias_database =
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtpd_recipient_restrictions = {rcpt_restrictions}
smtpd_end_of_data_restrictions = {eod_restrictions}
smtpd_policy_service_default_action = 451 4.3.5 policy service unavailable
queue_run_delay = 300s
smtp_connection_cache_on_demand = no
{extra}
"""


def postfix_available():
    return all(shutil.which(p) or os.path.exists("/usr/sbin/" + p)
               for p in ("postfix", "postsuper", "postqueue")) and os.geteuid() == 0


class Postfix:
    """A throwaway Postfix instance on 127.0.0.1 with its own config and queue
    directory (postfix -c DIR), relaying everything to a Sink. Needs root."""

    def __init__(self, sink_port, policy=None, extra="", workdir=None):
        self.dir = os.path.abspath(workdir or tempfile.mkdtemp(prefix="untild-postfix-"))
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        check = "check_policy_service %s, " % policy if policy else ""
        with open(os.path.join(self.dir, "main.cf"), "w") as f:
            f.write(POSTFIX_MAIN_CF.format(
                dir=self.dir, sink_port=sink_port,
                rcpt_restrictions=check + "permit_mynetworks, reject",
                eod_restrictions=("check_policy_service %s" % policy) if policy else "",
                extra=extra))
        with open(os.path.join(self.dir, "master.cf"), "w") as f:
            f.write(POSTFIX_MASTER_CF.format(listen="127.0.0.1:%d" % self.port))
        os.makedirs(os.path.join(self.dir, "queue"), mode=0o755)
        os.makedirs(os.path.join(self.dir, "data"), mode=0o700)
        import pwd
        pw = pwd.getpwnam("postfix")
        os.chown(os.path.join(self.dir, "data"), pw.pw_uid, pw.pw_gid)
        self.started = False

    def cmd(self, *args, check=True):
        r = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
        if check and r.returncode != 0:
            raise RuntimeError("%s: exit %d\n%s%s\n--- maillog ---\n%s"
                               % (" ".join(args), r.returncode, r.stdout, r.stderr, self.logtext()))
        return r

    def start(self):
        self.cmd("postfix", "-c", self.dir, "start")
        self.started = True
        end = time.time() + 15
        while time.time() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("postfix did not start:\n" + self.logtext())

    def master_pid(self):
        try:
            with open(os.path.join(self.dir, "queue", "pid", "master.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def stop(self):
        if not self.started:
            return
        self.started = False
        pid = self.master_pid()
        self.cmd("postfix", "-c", self.dir, "stop", check=False)
        if pid:
            end = time.time() + 10
            while time.time() < end:
                try:
                    os.kill(pid, 0)
                except OSError:
                    break
                time.sleep(0.1)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def logtext(self):
        try:
            with open(os.path.join(self.dir, "maillog"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def queue(self):
        """Queue entries as dicts (postqueue -j)."""
        import json
        r = self.cmd("postqueue", "-c", self.dir, "-j", check=False)
        return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]

    def swaks(self, to, frm="rep@example.com", header="", body="Hello.", extra=()):
        """Submit one message with swaks; returns the CompletedProcess."""
        args = ["swaks", "--server", "127.0.0.1", "--port", str(self.port), "--from", frm,
                "--to", to, "--helo", "client.test.invalid", "--timeout", "20",
                "--body", body] + list(extra)
        if header:
            args += ["--header", header]
        return subprocess.run(args, capture_output=True, text=True, timeout=60)


# ---------------------------------------------------------------------------
# Dovecot fixture (IMAP watcher tests): a throwaway Dovecot on 127.0.0.1 with
# its own config, users and maildirs; started in the foreground, stopped by PID.

DOVECOT_CONF = """
protocols = imap
listen = 127.0.0.1
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
info_log_path = {dir}/dovecot.log
ssl = {ssl}
{ssl_files}
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = {uid}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {dir}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dir}/home/%u
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    auto = create
    special_use = \\Sent
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
  }}
}}
{users_extra}
"""


def make_self_signed(dirpath, cn="127.0.0.1", name="cert"):
    """A self-signed certificate (openssl) for cn, with IP/DNS SANs.
    Returns (cert_path, key_path)."""
    cert = os.path.join(dirpath, name + ".pem")
    key = os.path.join(dirpath, name + ".key")
    san = ("IP:%s" % cn) if cn.replace(".", "").isdigit() else ("DNS:%s" % cn)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=%s" % cn, "-addext", "subjectAltName=%s" % san,
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    os.chmod(key, 0o600)
    return cert, key


class Dovecot:
    """A real Dovecot (imap, and imaps when tls=True with a self-signed
    certificate for 127.0.0.1). Users: add_user(name, password)."""

    def __init__(self, tls=False, cert_cn="127.0.0.1"):
        self.dir = tempfile.mkdtemp(prefix="untild-dovecot-")
        os.chmod(self.dir, 0o755)          # Dovecot's auth must traverse it
        self.port = free_port()
        self.imaps_port = free_port() if tls else 0
        self.tls = tls
        self.home = os.path.join(self.dir, "home")
        os.makedirs(self.home)
        if os.geteuid() == 0:
            # Dovecot refuses uid 0 for mail and root for its login processes.
            self.uid, self.gid = 65534, 65534
            os.chown(self.home, self.uid, self.gid)
            users_extra = ""
        else:
            import grp
            import pwd
            self.uid, self.gid = os.getuid(), os.getgid()
            users_extra = ("default_internal_user = {u}\ndefault_login_user = {u}\n"
                           "default_internal_group = {g}\n").format(
                               u=pwd.getpwuid(self.uid).pw_name, g=grp.getgrgid(self.gid).gr_name)
        self.cert = self.key = None
        ssl_files = ""
        if tls:
            self.cert, self.key = make_self_signed(self.dir, cert_cn)
            ssl_files = "ssl_cert = <%s\nssl_key = <%s\n" % (self.cert, self.key)
        self.conf = os.path.join(self.dir, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(DOVECOT_CONF.format(dir=self.dir, ssl="yes" if tls else "no", ssl_files=ssl_files,
                                        uid=self.uid, gid=self.gid, port=self.port,
                                        imaps_port=self.imaps_port, users_extra=users_extra))
        self.users = {}
        self.proc = None

    def add_user(self, name, password):
        self.users[name] = password
        with open(os.path.join(self.dir, "users"), "w") as f:
            for u, p in self.users.items():
                f.write("%s:{PLAIN}%s\n" % (u, p))
        os.chmod(os.path.join(self.dir, "users"), 0o644)
        return self

    def start(self):
        # its own process group: stop() ends the master and the session
        # processes it forked (they outlive a master that is only signalled)
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", self.conf], start_new_session=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.time() + 10
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("dovecot exited:\n" + self.logtext())
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("dovecot did not start:\n" + self.logtext())

    def stop(self):
        if self.proc:
            pgid = self.proc.pid
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            try:
                os.killpg(pgid, signal.SIGKILL)   # sessions left behind
            except OSError:
                pass
        self.proc = None
        # the master may leave its pid file; a restart must not trip on it
        try:
            os.unlink(os.path.join(self.dir, "run", "master.pid"))
        except OSError:
            pass

    def restart(self):
        self.stop()
        return self.start()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def logtext(self):
        try:
            with open(os.path.join(self.dir, "dovecot.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def client(self, user, password=None):
        """A logged-in imaplib client (plain IMAP on loopback)."""
        import imaplib
        c = imaplib.IMAP4("127.0.0.1", self.port, timeout=20)
        c.login(user, password if password is not None else self.users[user])
        return c

    def untild_section(self, user, password_file, rep=None, tls=False, tls_ca=None, extra=""):
        """An [imap] (or [imap REP]) section for untild.conf."""
        url = ("imaps://127.0.0.1:%d" % self.imaps_port) if tls else ("imap://127.0.0.1:%d" % self.port)
        lines = ["[imap%s]" % (" " + rep if rep else ""), "url = " + url, "username = " + user,
                 "password_file = " + password_file, "tls = " + ("required" if tls else "none"),
                 "poll_interval = 1"]
        if tls_ca:
            lines.append("tls_ca = " + tls_ca)
        return "\n".join(lines) + "\n" + extra


def imap_quote(name):
    return '"%s"' % name.replace("\\", "\\\\").replace('"', '\\"')


def imap_append(client, folder, msg, flags=None):
    """APPEND msg (bytes) to folder; returns the new UID (UIDPLUS)."""
    import re
    typ, data = client.append(imap_quote(folder), flags, None, msg)
    if typ != "OK":
        raise AssertionError("APPEND %s: %s %s" % (folder, typ, data))
    m = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
    return int(m.group(1)) if m else None


def imap_keywords(client, folder, uid):
    """The flags of message uid in folder, as a list of str."""
    import re
    client.select(imap_quote(folder))
    typ, data = client.uid("FETCH", str(uid), "(FLAGS)")
    for d in data:
        if isinstance(d, bytes):
            m = re.search(rb"FLAGS \(([^)]*)\)", d)
            if m:
                return m.group(1).decode().split()
    return []


def imap_messages(client, folder):
    """Raw messages in folder (list of bytes)."""
    client.select(imap_quote(folder))
    typ, data = client.uid("SEARCH", None, "ALL")
    out = []
    for uid in (data[0] or b"").split():
        typ, d = client.uid("FETCH", uid, "(BODY.PEEK[])")
        for part in d:
            if isinstance(part, tuple):
                out.append(part[1])
    return out


# ---- CalDAV: a throwaway Radicale (tests/e2e/test_caldav.py) ----------------

class Radicale:
    """A real Radicale CalDAV server on 127.0.0.1 with its own storage,
    htpasswd (plain) users and owner_only rights. Radicale does no
    server-side scheduling (fine: the tests look at what is stored)."""

    def __init__(self, users=None):
        self.dir = tempfile.mkdtemp(prefix="radicale-e2e-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.users = users or {"rep": "secret"}
        with open(os.path.join(self.dir, "users"), "w") as f:
            for u, p in self.users.items():
                f.write("%s:%s\n" % (u, p))
        self.conf = os.path.join(self.dir, "radicale.conf")
        with open(self.conf, "w") as f:
            f.write("[server]\nhosts = 127.0.0.1:%d\n[auth]\ntype = htpasswd\nhtpasswd_filename = %s\n"
                    "htpasswd_encryption = plain\n[storage]\nfilesystem_folder = %s\n[rights]\n"
                    "type = owner_only\n[logging]\nlevel = warning\n"
                    % (self.port, os.path.join(self.dir, "users"), os.path.join(self.dir, "collections")))
        self.proc = None
        self.log = os.path.join(self.dir, "radicale.log")

    def start(self):
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen(["/usr/bin/python3", "-m", "radicale", "--config", self.conf],
                                     stdout=self.logf, stderr=self.logf)
        end = time.time() + 15
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("radicale exited:\n" + open(self.log, errors="replace").read())
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("radicale did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "logf", None):
            self.logf.close()
            self.logf = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def request(self, method, path, body=None, headers=None, user="rep", port=None, auth=True):
        """One HTTP request (to Radicale, or to port, e.g. untild's proxy).
        Returns (status, {lower-case header: value}, body bytes)."""
        import base64
        import http.client
        h = dict(headers or {})
        if auth and user:
            tok = base64.b64encode(("%s:%s" % (user, self.users[user])).encode()).decode()
            h.setdefault("Authorization", "Basic " + tok)
        if isinstance(body, str):
            body = body.encode()
        c = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=20)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def mkcalendar(self, path, name):
        body = ('<?xml version="1.0" encoding="utf-8"?><C:mkcalendar xmlns:D="DAV:" '
                'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><D:displayname>%s</D:displayname>'
                '</D:prop></D:set></C:mkcalendar>' % name)
        st, _, data = self.request("MKCALENDAR", path, body, {"Content-Type": "application/xml"})
        if st != 201:
            raise AssertionError("MKCALENDAR %s: %d %s" % (path, st, data))

    def put(self, path, ics, headers=None, port=None):
        h = {"Content-Type": "text/calendar; charset=utf-8"}
        h.update(headers or {})
        return self.request("PUT", path, ics, h, port=port)

    def get(self, path, port=None):
        return self.request("GET", path, port=port)

    def delete(self, path, port=None, headers=None):
        return self.request("DELETE", path, headers=headers, port=port)


def vevent(uid, start, end, summary="Meeting", organizer="rep@example.com", attendees=(), extra="",
           description=None, sequence=0, status=None):
    """A VCALENDAR with one VEVENT (CRLF). start/end: iCalendar UTC times
    like 20270301T100000Z."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//untild tests//EN", "BEGIN:VEVENT",
             "UID:%s" % uid, "DTSTAMP:20270101T000000Z", "DTSTART:%s" % start, "DTEND:%s" % end,
             "SUMMARY:%s" % summary, "SEQUENCE:%d" % sequence]
    if organizer:
        lines.append("ORGANIZER:mailto:%s" % organizer)
    for a in attendees:
        lines.append("ATTENDEE;CN=%s;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:%s" % (a.split("@")[0], a))
    if description:
        lines.append("DESCRIPTION:%s" % description)
    if status:
        lines.append("STATUS:%s" % status)
    lines += [l for l in extra.split("\n") if l]
    lines += ["END:VEVENT", "END:VCALENDAR", ""]
    return "\r\n".join(lines)


def unfold(ics):
    """iCalendar text with folded lines joined (str)."""
    if isinstance(ics, bytes):
        ics = ics.decode("utf-8", "replace")
    return ics.replace("\r\n ", "").replace("\r\n\t", "").replace("\n ", "")


def proc_status_kb(pid, field="VmHWM"):
    """A memory field of /proc/PID/status (VmHWM, VmRSS...) in kB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("%s not in /proc/%d/status" % (field, pid))


def proc_has_asan(pid):
    """True if the process runs with AddressSanitizer (its memory figures
    then include the shadow and quarantine)."""
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()
