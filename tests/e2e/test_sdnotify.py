"""Type=notify: READY=1 once the listener and spool are up, STATUS= with
counts, WATCHDOG=1 at half of WATCHDOG_USEC, RELOADING=1/READY=1 around a
SIGHUP, STOPPING=1 on SIGTERM. The test plays systemd's part with its own
NOTIFY_SOCKET (a datagram socket), as the unit would see it."""
import os
import signal
import socket
import subprocess
import time
import unittest

from harness import UNTILD, Sink, Untild


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


if __name__ == "__main__":
    unittest.main()
