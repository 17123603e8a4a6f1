"""The personal (systemctl --user) setup: with systemd's STATE_DIRECTORY and
RUNTIME_DIRECTORY in the environment, a config that names no paths works,
and untilctl finds the socket through XDG_RUNTIME_DIR by itself."""
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from harness import TIMEOUT_SCALE, UNTILD, UNTILCTL, free_port


class UserUnit(unittest.TestCase):
    def test_defaults_follow_systemd_directories(self):
        top = tempfile.mkdtemp(prefix="untild-user-")
        self.addCleanup(shutil.rmtree, top, True)
        state, runtime = os.path.join(top, "state", "untild"), os.path.join(top, "run", "untild")
        os.makedirs(state)
        os.makedirs(runtime)
        conf = os.path.join(top, "untild.conf")
        port = free_port()
        with open(conf, "w") as f:
            f.write("[daemon]\nowner = me@example.com\n[smtp]\nlisten = 127.0.0.1:%d\n" % port)
        env = dict(os.environ, STATE_DIRECTORY=state, RUNTIME_DIRECTORY=runtime)
        log = open(os.path.join(top, "log"), "wb")
        self.addCleanup(log.close)
        p = subprocess.Popen([UNTILD, "-c", conf], env=env, stdout=log, stderr=log)
        self.addCleanup(lambda: p.poll() is None and (p.terminate(), p.wait(10)))
        # The control socket is put in place last, once everything is up:
        # its presence is the readiness this test waits for (no guess).
        sock = os.path.join(runtime, "control.sock")
        end = time.time() + 30 * TIMEOUT_SCALE
        while time.time() < end and not os.path.exists(sock) and p.poll() is None:
            time.sleep(0.05)
        self.assertTrue(os.path.exists(sock), open(os.path.join(top, "log")).read())
        self.assertTrue(os.path.isdir(os.path.join(state, "spool", "held")))
        cenv = {k: v for k, v in os.environ.items() if k != "UNTILD_CONTROL_SOCKET"}
        cenv["XDG_RUNTIME_DIR"] = os.path.join(top, "run")
        r = subprocess.run([UNTILCTL, "status"], env=cenv, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("windows:", r.stdout)


if __name__ == "__main__":
    unittest.main()
