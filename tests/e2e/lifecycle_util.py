"""Helpers shared by the held-message lifecycle tests (test_lifecycle.py)
and the model-based test (test_model.py): raw SMTP with MAIL parameters,
the audit log, spool states, and a scheduler barrier."""
import os
import re
import socket
import sqlite3
import time

REP = "rep@example.com"
SPOOL_STATES = ("incoming", "held", "active")


def read_reply(f):
    lines = []
    while True:
        line = f.readline(4096)
        if not line:
            raise ConnectionError("EOF")
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return int(lines[-1][:3]), b"".join(lines).decode("utf-8", "replace")


def smtp_send(port, rcpts, msg, frm=REP, mail_params="", timeout=30):
    """One SMTP transaction. Returns (rcpt_codes {addr: code}, code, text):
    code/text are the final reply (DATA's), or the refusing stage's reply
    (code of MAIL, of the last RCPT when none was accepted, of DATA)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        f = s.makefile("rb")
        read_reply(f)
        s.sendall(b"EHLO test\r\n")
        read_reply(f)
        s.sendall(("MAIL FROM:<%s>%s\r\n" % (frm, " " + mail_params if mail_params else "")).encode())
        code, text = read_reply(f)
        if code != 250:
            return {}, code, text
        codes = {}
        for r in rcpts:
            s.sendall(("RCPT TO:<%s>\r\n" % r).encode())
            codes[r], text = read_reply(f)
        if not any(c == 250 for c in codes.values()):
            s.sendall(b"QUIT\r\n")
            return codes, max(codes.values()) if codes else 503, text
        s.sendall(b"DATA\r\n")
        code, text = read_reply(f)
        if code != 354:
            return codes, code, text
        s.sendall(msg.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        code, text = read_reply(f)
        s.sendall(b"QUIT\r\n")
        return codes, code, text
    finally:
        s.close()


_seq = [0]


def make_msg(subject, rcpts, tag=None):
    """A message with a unique Message-ID; returns (bytes, message_id)."""
    _seq[0] += 1
    mid = "%s.%d.%d@lifecycle.test" % (tag or "m", os.getpid(), _seq[0])
    data = ("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s>\r\n\r\nBody of %s.\r\n"
            % (REP, ", ".join(rcpts), subject, mid, subject)).encode()
    return data, mid


def mid_in(env, mid):
    return ("<%s>" % mid).encode() in env.data


def audit_rows(u, event=None, msg_id=None):
    """(event, contact, msg_id, detail) rows of untild's audit log."""
    path = os.path.join(u.dir, "state", "untild.db")
    if not os.path.exists(path):
        return []
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)
    try:
        q = "SELECT event, contact, msg_id, detail FROM audit WHERE 1=1"
        args = []
        if event:
            q += " AND event = ?"
            args.append(event)
        if msg_id:
            q += " AND msg_id = ?"
            args.append(msg_id)
        return db.execute(q + " ORDER BY rowid", args).fetchall()
    finally:
        db.close()


def spool_all(u):
    return {st: u.spool_files(st) for st in SPOOL_STATES}


def delivering(u):
    """Held entries a delivery has now. The file stays in held/ while it is
    delivered (the state is in memory), so "stuck" is asked of the daemon;
    active/ stays empty (only older versions wrote there)."""
    return [h["id"] for h in u.held_json() if h.get("state") == "delivering"]


def held_by_mid(u, mid):
    """The held-list entries (JSON) of one Message-ID."""
    return [h for h in u.held_json() if (h.get("message_id") or "").strip("<>") == mid]


def notices_with(sink, mid):
    """Mail to the rep that carries the message mid (attached)."""
    return [m for m in sink.for_rcpt(REP) if mid_in(m, mid) and re.search(rb"^X-Untild: notice", m.data, re.M)]


class Barrier:
    """Returns once the release scheduler has made a pass at the current
    clock: a probe message held only by FUTURERELEASE (HOLDFOR=1) is sent,
    the clock moves one second, and the probe must arrive. Whatever that
    pass released is then delivering or delivered. The
    probe goes to its own address, so it never mixes with a test's mail."""

    def __init__(self, u, sink, addr="probe@probe.test"):
        self.u, self.sink, self.addr = u, sink, addr

    def __call__(self):
        n = len(self.sink.for_rcpt(self.addr))
        data, mid = make_msg("probe", [self.addr], tag="probe")
        _, code, text = smtp_send(self.u.port, [self.addr], data, mail_params="HOLDFOR=1")
        if code != 250:
            raise AssertionError("probe not accepted: %d %s" % (code, text))
        self.u.ctl("debug", "clock", "advance", "1", check=0)
        self.u.wait_for(lambda: len(self.sink.for_rcpt(self.addr)) > n, timeout=15,
                        what="the scheduler probe (a HOLDFOR=1 message) after one second")


def set_clock_retry(u, when):
    """set_clock right after a start (the socket file exists from bind(), a
    moment before listen()): retry a refused connection briefly."""
    end = time.time() + 10
    while True:
        r = u.ctl("debug", "clock", "set", when)
        if r.returncode == 0:
            return
        if time.time() > end:
            raise AssertionError("debug clock set: %s%s" % (r.stdout, r.stderr))
        time.sleep(0.05)
