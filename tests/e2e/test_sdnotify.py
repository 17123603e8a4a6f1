"""Type=notify: READY=1 once the listener and spool are up, STATUS= with
counts, WATCHDOG=1 at half of WATCHDOG_USEC, RELOADING=1/READY=1 around a
SIGHUP, STOPPING=1 on SIGTERM. The test plays systemd's part with its own
NOTIFY_SOCKET (a datagram socket), as the unit would see it.

Start-up: the control socket, the SMTP listener and READY=1 all mean
"ready" (a slow start, with many windows to load, shows none of them early);
a second daemon on the same state_dir is refused before it touches any
socket of the first."""
import os
import signal
import socket
import subprocess
import time
import unittest

from harness import TIMEOUT_SCALE, UNTILD, UNTILCTL, Sink, Untild


class SdNotify(unittest.TestCase):
    def test_ready_status_watchdog_reload_stop(self):
        sink = Sink().start()
        self.addCleanup(sink.stop)
        u = Untild(sink, windows="jane@acme.com 2099-01-01\n")
        self.addCleanup(u.cleanup)
        path = os.path.join(u.dir, "notify.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(path)
        s.settimeout(10)
        self.addCleanup(s.close)
        env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="1000000")
        logf = open(u.log, "ab")
        self.addCleanup(logf.close)
        p = subprocess.Popen([UNTILD, "-c", u.conf], stdout=logf, stderr=logf, env=env)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        env["WATCHDOG_PID"] = str(p.pid)

        msgs = []

        def until(pred, what):
            end = time.time() + 10
            while time.time() < end:
                try:
                    msgs.append(s.recv(4096).decode())
                except socket.timeout:
                    break
                if pred():
                    return
            self.fail("no %s; got %r\n%s" % (what, msgs, u.logtext()[-2000:]))

        until(lambda: any("READY=1" in m for m in msgs), "READY=1")
        ready = [m for m in msgs if "READY=1" in m][0]
        self.assertIn("STATUS=1 window(s), 0 held", ready)
        # the listener is up when READY is sent
        socket.create_connection(("127.0.0.1", u.port), 2).close()
        n = len(msgs)
        until(lambda: sum("WATCHDOG=1" in m for m in msgs[n:]) >= 2, "two WATCHDOG=1 pings")
        p.send_signal(signal.SIGHUP)
        until(lambda: any("RELOADING=1" in m for m in msgs), "RELOADING=1")
        k = [i for i, m in enumerate(msgs) if "RELOADING=1" in m][0]
        until(lambda: any("READY=1" in m for m in msgs[k:]), "READY=1 after reload")
        p.send_signal(signal.SIGTERM)
        until(lambda: any("STOPPING=1" in m for m in msgs), "STOPPING=1")
        self.assertEqual(p.wait(10), 0)


class StartUp(unittest.TestCase):
    def notify_socket(self, u):
        path = os.path.join(u.dir, "notify.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(path)
        s.setblocking(False)
        self.addCleanup(s.close)
        return path, s

    def test_socket_listener_and_ready_appear_together(self):
        # Enough windows that loading them takes a visible while: before the
        # fix the control socket (and the SMTP port) were there from the
        # first moment, long before READY=1.
        n = 600000   # about a second of loading on this machine; 150,000 was too quick once the loader got faster
        windows = "".join("c%d@load.example 2099-01-01\n" % i for i in range(n))
        u = Untild(None, windows=windows)
        self.addCleanup(u.cleanup)
        path, ns = self.notify_socket(u)
        sock = os.path.join(u.dir, "control.sock")
        held = os.path.join(u.dir, "state", "spool", "held")
        logf = open(u.log, "ab")
        self.addCleanup(logf.close)
        t0 = time.time()
        p = subprocess.Popen([UNTILD, "-c", u.conf], stdout=logf, stderr=logf,
                             env=dict(os.environ, NOTIFY_SOCKET=path))
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        seen = {}
        end = time.time() + 60 * TIMEOUT_SCALE
        while time.time() < end and len(seen) < 3 and p.poll() is None:
            now = time.time()
            try:
                if b"READY=1" in ns.recv(4096):
                    seen.setdefault("ready", now)
            except BlockingIOError:
                pass
            if os.path.exists(sock):
                seen.setdefault("control", now)
                self.assertTrue(os.path.isdir(held), "control socket before the spool")
            try:
                socket.create_connection(("127.0.0.1", u.port), 0.5).close()
                seen.setdefault("smtp", now)
                self.assertTrue(os.path.isdir(held), "SMTP listener before the spool")
            except OSError:
                pass
            time.sleep(0.01)
        self.assertEqual(sorted(seen), ["control", "ready", "smtp"], u.logtext()[-2000:])
        first, last = min(seen.values()), max(seen.values())
        # Loading took a while (else the test proves nothing) ...
        self.assertGreater(first - t0, 0.3, "start-up too quick to tell: %r" % seen)
        # ... and the three came together, at its end.
        self.assertLess(last - first, 0.25 * TIMEOUT_SCALE + 0.1 * (first - t0),
                        "not ready together: %r (start %r)" % (seen, t0))
        r = subprocess.run([UNTILCTL, "-s", sock, "status"], capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("%d" % n, r.stdout)

    def test_second_daemon_on_same_state_dir_leaves_the_first_alone(self):
        sink = Sink().start()
        self.addCleanup(sink.stop)
        u = Untild(sink, windows="jane@acme.com 2099-01-01\n")
        self.addCleanup(u.cleanup)
        u.start()
        sock = os.path.join(u.dir, "control.sock")
        ino = os.stat(sock).st_ino
        # The second one: same state_dir and control socket, another SMTP port.
        conf2 = os.path.join(u.dir, "second.conf")
        with open(u.conf) as f:
            text = f.read()
        from harness import free_port
        with open(conf2, "w") as f:
            f.write(text.replace("listen = 127.0.0.1:%d" % u.port, "listen = 127.0.0.1:%d" % free_port()))
        r = subprocess.run([UNTILD, "-c", conf2], capture_output=True, text=True, timeout=20 * TIMEOUT_SCALE)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("another untild (pid %d) is running on state_dir %s" % (u.proc.pid, os.path.join(u.dir, "state")),
                      r.stderr)
        self.assertNotIn("control: listening", r.stderr)
        # The first daemon's socket is the same file and still answers.
        self.assertEqual(os.stat(sock).st_ino, ino)
        self.assertFalse(os.path.exists(sock + ".new"))
        self.assertEqual(u.ctl("check", "jane@acme.com").returncode, 3)
        self.assertIsNone(u.proc.poll())


if __name__ == "__main__":
    unittest.main()
