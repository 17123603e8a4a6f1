"""make install honours PREFIX and DESTDIR, and what it installs works."""
import os
import shutil
import subprocess
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("UNTILD_BUILD", os.path.join(ROOT, "build"))


class Install(unittest.TestCase):
    def test_destdir_prefix(self):
        d = tempfile.mkdtemp(prefix="untild-install-")
        self.addCleanup(shutil.rmtree, d, True)
        r = subprocess.run(["make", "-s", "-C", ROOT, "install", "DESTDIR=" + d, "PREFIX=/opt/u",
                            "BUILD=" + os.path.relpath(BUILD, ROOT)], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        for f in ["opt/u/sbin/untild", "opt/u/bin/untilctl", "etc/untild/untild.conf",
                  "opt/u/lib/systemd/system/untild.service", "opt/u/share/man/man8/untild.8",
                  "opt/u/share/man/man5/untild.conf.5", "opt/u/lib/sysusers.d/untild.conf",
                  "opt/u/share/untild/console/index.html", "opt/u/share/untild/console/console.js",
                  "opt/u/share/untild/console/console.css"]:
            self.assertTrue(os.path.exists(os.path.join(d, f)), f)
        with open(os.path.join(d, "opt/u/lib/systemd/system/untild.service")) as f:
            self.assertIn("ExecStart=/opt/u/sbin/untild", f.read())
        # The installed config is valid as shipped.
        r = subprocess.run([os.path.join(d, "opt/u/sbin/untild"), "-t", "-c",
                            os.path.join(d, "etc/untild/untild.conf")], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration OK", r.stdout)


if __name__ == "__main__":
    unittest.main()
