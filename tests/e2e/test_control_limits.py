"""The control socket is bounded: silent clients are closed after the idle
timeout and cannot hold more than a fixed number of connections."""
import os
import socket
import time

from harness import GateTest


class ControlLimits(GateTest):
    def test_silent_clients_are_dropped(self):
        path = os.path.join(self.u.dir, "control.sock")
        socks = []
        for _ in range(40):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            socks.append(s)
        self.addCleanup(lambda: [s.close() for s in socks])
        self.u.wait_for(lambda: "too many connections" in self.u.logtext(), what="refusal")
        # the idle ones are closed, and the socket serves again
        self.u.wait_for(lambda: "idle for" in self.u.logtext(), timeout=20, what="idle close")
        r = self.u.ctl("status")
        self.assertEqual(r.returncode, 0, r.stderr)
        closed = 0
        for s in socks:
            s.settimeout(0.5)
            try:
                closed += s.recv(1) == b""
            except (socket.timeout, ConnectionResetError):
                closed += 1
        self.assertEqual(closed, 40)
