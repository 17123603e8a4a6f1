"""SMTP sessions are bounded: per client address ([smtp]
max_sessions_per_address), in time ([smtp] session_deadline), in memory
(bodies above [smtp] spill_threshold are received on disk), and a bare CR
in DATA is refused rather than passed on."""
import os
import smtplib
import socket
import time

from harness import GateTest, message

JANE = "jane@acme.com"


def connect(port, source="127.0.0.1"):
    s = socket.create_connection(("127.0.0.1", port), 20, source_address=(source, 0))
    return s, s.makefile("rb")


class PerAddress(GateTest):
    untild_kwargs = {"smtp_extra": "max_sessions_per_address = 3\n"}

    def test_fourth_session_from_one_address_gets_421(self):
        held = []
        for _ in range(3):
            s, f = connect(self.u.port)
            held.append(s)
            self.assertTrue(f.readline().startswith(b"220"))
        self.addCleanup(lambda: [s.close() for s in held])
        s, f = connect(self.u.port)
        self.addCleanup(s.close)
        line = f.readline()
        self.assertTrue(line.startswith(b"421 4.7.0"), line)
        self.assertIn(b"too many connections from your address", line)
        self.assertEqual(f.readline(), b"")
        self.assertIn("max_sessions_per_address", self.u.logtext())
        # another address is served
        o, g = connect(self.u.port, "127.0.0.2")
        self.addCleanup(o.close)
        self.assertTrue(g.readline().startswith(b"220"))
        # one closes: the address may open one again
        held[0].sendall(b"QUIT\r\n")
        held[0].recv(100)
        held[0].close()
        self.u.wait_for(lambda: self.u.logtext().count("disconnect from 127.0.0.1") >= 2,
                        what="the session closed")
        n, h = connect(self.u.port)
        self.addCleanup(n.close)
        self.assertTrue(h.readline().startswith(b"220"))


class Deadline(GateTest):
    untild_kwargs = {"smtp_extra": "session_deadline = 2\n"}

    def test_busy_session_closed_at_the_deadline(self):
        s, f = connect(self.u.port)
        self.addCleanup(s.close)
        self.assertTrue(f.readline().startswith(b"220"))
        t0 = time.time()
        while True:
            s.sendall(b"NOOP\r\n")
            line = f.readline()
            if not line.startswith(b"250"):
                break
            self.assertLess(time.time() - t0, 10, "never closed")
            time.sleep(0.2)
        self.assertTrue(line.startswith(b"421 4.4.2"), line)
        self.assertIn(b"session deadline", line)
        self.assertGreaterEqual(time.time() - t0, 1.5)
        self.assertEqual(f.readline(), b"")
        self.assertIn("reached session_deadline", self.u.logtext())


class BareCR(GateTest):
    def test_bare_cr_refused_nothing_relayed(self):
        s = self.smtp()
        msg = message(to="bob@other.com") + b"line with a bare\rCR inside\r\n"
        with self.assertRaises(smtplib.SMTPDataError) as cm:
            s.sendmail("rep@example.com", ["bob@other.com"], msg)
        self.assertEqual(cm.exception.smtp_code, 550)
        self.assertIn(b"bare CR", cm.exception.smtp_error)
        # the session goes on, and a clean message passes
        s.sendmail("rep@example.com", ["bob@other.com"], message(to="bob@other.com"))
        got = self.sink.wait(1)
        self.assertEqual(len(got), 1)
        self.assertNotIn(b"bare", got[0].data)


class LargeBodies(GateTest):
    windows = "jane@acme.com 2027-07-01\n"
    untild_kwargs = {"smtp_extra": "spill_threshold = 65536\n", "max_size": 20 * 1024 * 1024}

    def test_spilled_message_relayed_and_held_byte_for_byte(self):
        self.u.set_clock("2027-01-10T10:00Z")
        line = b"0123456789abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789\r\n"
        body = b"".join(b"%07d " % i + line for i in range(60000))     # about 5 MB
        msg = message(to="bob@other.com, jane@acme.com") + body
        s = self.smtp()
        # relayed straight from the mapped temp file
        s.sendmail("rep@example.com", ["bob@other.com"], msg)
        self.u.wait_for(lambda: self.sink.for_rcpt("bob@other.com"), what="relay")
        self.assertEqual(self.sink.for_rcpt("bob@other.com")[0].data, msg)
        # held (written to the spool by the holder threads from the mapping)
        s.sendmail("rep@example.com", [JANE], msg)
        self.assertEqual(len(self.u.spool_files()), 1)
        # no temp file left in state_dir
        leftovers = [n for n in os.listdir(os.path.join(self.u.dir, "state")) if n.startswith(".smtp-body")]
        self.assertEqual(leftovers, [])
        self.u.set_clock("2027-07-01T00:00:01Z")
        self.u.wait_for(lambda: self.sink.for_rcpt(JANE), what="release")
        self.assertEqual(self.sink.for_rcpt(JANE)[0].data, msg)
