"""The Debian package (debian/): dpkg-buildpackage -b builds it from a copy
of the tree (the worktree is not touched), then: its version is VERSION's,
its build dependencies are the Makefile's libraries, its files and modes,
its conffile, lintian (no error, no warning), the maintainer scripts' shape,
the guard that keeps the daemon from starting on the sample, and a real
install and purge into a throwaway root (dpkg --root, scripts run
chrootless against that root only). Also, on this build's binaries:
--version, --help and untild -t reporting every error (class Cli).

Skipped when the Debian build tools are missing (CI installs them:
tests/install-deps.sh), and under make asan-check (make check has built the
package already; the package is built with Debian's flags, not ASan's).
The build runs with DEB_BUILD_OPTIONS="nocheck noautodbgsym parallel=2":
make check runs the tests, the package build need not run them again."""
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = ["dpkg-buildpackage", "dpkg-deb", "dh"]
MISSING = [t for t in TOOLS if not shutil.which(t)]
UNDER_ASAN = "-fsanitize" in os.environ.get("CFLAGS", "")
# What the outer make (make check -> run-all.sh -> run.py) puts in the
# environment must not reach the package build: Debian's flags come from
# dpkg-buildflags, which would take a CFLAGS from the environment.
DROP_ENV = ("CFLAGS", "CPPFLAGS", "CXXFLAGS", "LDFLAGS", "CC", "MAKEFLAGS", "MFLAGS",
            "MAKELEVEL", "MAKEOVERRIDES", "BUILD", "DESTDIR", "PREFIX", "V",
            "DEB_BUILD_PROFILES", "UNTILD_WRAPPER")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def version():
    return read(os.path.join(ROOT, "VERSION")).strip()


def changelog_version():
    first = read(os.path.join(ROOT, "debian/changelog")).splitlines()[0]
    m = re.match(r"^untild \(([^)]+)\) ", first)
    return m.group(1) if m else None


def source_files():
    """The tree's files as git sees them (tracked and new, not ignored), so
    no build output or debian/ leftovers go into the copy."""
    r = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others",
                        "--exclude-standard"], capture_output=True)
    if r.returncode == 0:
        names = [n for n in r.stdout.decode().split("\0") if n]
        return [n for n in names if os.path.lexists(os.path.join(ROOT, n))]
    skip = {".git", "build", "build-asan", "var", "__pycache__"}
    out = []
    for d, dirs, files in os.walk(ROOT):
        dirs[:] = [x for x in dirs if x not in skip]
        out += [os.path.relpath(os.path.join(d, f), ROOT) for f in files]
    return out


def copy_tree(dest):
    for name in source_files():
        src, dst = os.path.join(ROOT, name), os.path.join(dest, name)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)


def build_depends():
    """Package names in debian/control's Build-Depends (alternatives,
    versions, arch qualifiers and profiles dropped)."""
    text = read(os.path.join(ROOT, "debian/control"))
    m = re.search(r"^Build-Depends:(.*?)^(?=\S)", text, re.M | re.S)
    field = re.sub(r"^#.*$", "", m.group(1), flags=re.M)
    names = set()
    for dep in field.split(","):
        for alt in dep.split("|"):
            alt = re.sub(r"[\(\[<].*?[\)\]>]", "", alt).strip()
            if alt:
                names.add(alt.split(":")[0])
    return names


class BuildDepends(unittest.TestCase):
    """Cheap checks that need no package build."""

    def test_version_is_one(self):
        self.assertRegex(version(), r"^[0-9]+(\.[0-9]+)+$")
        self.assertEqual(changelog_version(), version(),
                         "debian/changelog and VERSION disagree: add an entry for %s" % version())

    @unittest.skipUnless(shutil.which("dpkg") and shutil.which("pkg-config"), "needs dpkg and pkg-config")
    def test_every_makefile_library_is_a_build_dependency(self):
        mk = read(os.path.join(ROOT, "Makefile"))
        mods = re.search(r"^PKGS\s*:=(.*)$", mk, re.M).group(1).split()
        mods += re.search(r"^CHECKPKG\s*:=(.*)$", mk, re.M).group(1).split()
        deps = build_depends()
        missing = []
        for mod in mods:
            r = subprocess.run(["pkg-config", "--variable=pcfiledir", mod], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, "pkg-config does not know %s" % mod)
            pc = os.path.join(r.stdout.strip(), mod + ".pc")
            r = subprocess.run(["dpkg", "-S", os.path.realpath(pc)], capture_output=True, text=True)
            if r.returncode != 0:
                r = subprocess.run(["dpkg", "-S", pc], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, "no package owns %s" % pc)
            owner = r.stdout.split(":")[0].strip()
            if owner not in deps:
                missing.append("%s (for %s)" % (owner, mod))
        self.assertEqual(missing, [], "add to Build-Depends in debian/control")


class Cli(unittest.TestCase):
    """What the package's version and an admin's first commands look like,
    on the binaries of this build (UNTILD_BUILD)."""
    BUILD = os.environ.get("UNTILD_BUILD", os.path.join(ROOT, "build"))

    def run_prog(self, name, *args):
        return subprocess.run([os.path.join(self.BUILD, name)] + list(args),
                              capture_output=True, text=True, timeout=30)

    def test_version(self):
        for prog in ("untild", "untilctl"):
            r = self.run_prog(prog, "--version")
            self.assertEqual((r.returncode, r.stdout), (0, "%s %s\n" % (prog, version())))

    def test_help_says_what_each_option_does(self):
        for prog, opts in (("untild", ["-c FILE", "-t", "-v", "--test-clock", "-h, --help", "--version"]),
                           ("untilctl", ["-s SOCKET", "-c CONFIG", "--json", "-h, --help", "--version"])):
            r = self.run_prog(prog, "--help")
            self.assertEqual(r.returncode, 0)
            for opt in opts:
                m = re.search(r"^  %s +(\S.*)$" % re.escape(opt), r.stdout, re.M)
                self.assertTrue(m, "%s --help does not describe %s:\n%s" % (prog, opt, r.stdout))
        r = self.run_prog("untild", "--bogus")
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage: untild", r.stderr)

    def test_check_reports_every_error(self):
        """untild -t: a duplicate section hides nothing below it."""
        with tempfile.TemporaryDirectory(prefix="untild-t-") as d:
            conf = os.path.join(d, "untild.conf")
            with open(conf, "w") as f:
                f.write("[smtp]\n[smtp]\ncolour = blue\n[daemon]\ntimezone = Nowhere/Land\n")
            r = self.run_prog("untild", "-t", "-c", conf)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.splitlines(), [
            conf + ":2: duplicate section [smtp] (first on line 1)",
            conf + ":3: unknown key 'colour' in [smtp]",
            conf + ":5: timezone: unknown time zone 'Nowhere/Land'"])


@unittest.skipIf(MISSING, "Debian build tools missing (%s): apt-get install debhelper lintian"
                 % " ".join(MISSING))
@unittest.skipIf(UNDER_ASAN, "built once by make check, with Debian's flags")
class Package(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="untild-deb-")
        cls.version = version()
        src = os.path.join(cls.tmp, "untild-" + cls.version)
        copy_tree(src)
        env = {k: v for k, v in os.environ.items() if k not in DROP_ENV}
        env["DEB_BUILD_OPTIONS"] = "nocheck noautodbgsym parallel=2"
        r = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1200)
        cls.build_log = r.stdout
        arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                              text=True).stdout.strip()
        cls.deb = os.path.join(cls.tmp, "untild_%s_%s.deb" % (cls.version, arch))
        if r.returncode != 0 or not os.path.exists(cls.deb):
            shutil.rmtree(cls.tmp, True)
            raise AssertionError("dpkg-buildpackage failed (exit %d):\n%s"
                                 % (r.returncode, "\n".join(r.stdout.splitlines()[-40:])))
        cls.x = os.path.join(cls.tmp, "x")
        subprocess.run(["dpkg-deb", "-x", cls.deb, cls.x], check=True)
        subprocess.run(["dpkg-deb", "-e", cls.deb, os.path.join(cls.tmp, "control")], check=True)
        with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", cls.deb], stdout=subprocess.PIPE) as p:
            with tarfile.open(fileobj=p.stdout, mode="r|") as t:
                cls.members = {m.name[2:].rstrip("/"): m for m in t if m.name not in ("./", ".")}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, True)

    def field(self, name):
        r = subprocess.run(["dpkg-deb", "-f", self.deb, name], capture_output=True, text=True)
        return r.stdout.strip()

    def ctl(self, name):
        return read(os.path.join(self.tmp, "control", name))

    # ---- what the package is ------------------------------------------------

    def test_version_everywhere(self):
        self.assertEqual(self.field("Version"), self.version)
        for prog in ("usr/sbin/untild", "usr/bin/untilctl"):
            r = subprocess.run([os.path.join(self.x, prog), "--version"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.strip(), "%s %s" % (os.path.basename(prog), self.version))

    def test_files_modes_owners(self):
        want = {
            "usr/sbin/untild": 0o755, "usr/bin/untilctl": 0o755,
            "etc/untild/untild.conf": 0o644, "etc/untild/windows.d": 0o755,
            "lib/systemd/system/untild.service": 0o644,
            "lib/systemd/system/untild.service.d/untild-sample-guard.conf": 0o644,
            "usr/lib/systemd/user/untild.service": 0o644,
            "usr/lib/sysusers.d/untild.conf": 0o644, "usr/lib/tmpfiles.d/untild.conf": 0o644,
            "usr/share/untild/untild.conf.sample": 0o644,
            "usr/share/untild/console/index.html": 0o644, "usr/share/untild/console/console.js": 0o644,
            "usr/share/untild/console/console.css": 0o644,
            "usr/share/doc/untild/copyright": 0o644, "usr/share/doc/untild/changelog.gz": 0o644,
            "usr/share/doc/untild/untild.conf.sample": 0o644,
        }
        # dh_compress compresses the larger docs only.
        for doc in ("README.Debian", "README.md", "DESIGN.md", "example.windows"):
            path = "usr/share/doc/untild/" + doc
            want[path if path in self.members else path + ".gz"] = 0o644
        # Every man page of the tree, compressed in its section.
        for m in os.listdir(os.path.join(ROOT, "man")):
            sec = m.rsplit(".", 1)[-1]
            want["usr/share/man/man%s/%s.gz" % (sec, m)] = 0o644
        for path, mode in want.items():
            self.assertIn(path, self.members, "missing from the package: " + path)
            self.assertEqual(self.members[path].mode & 0o7777, mode, path)
        for path, m in self.members.items():
            self.assertEqual((m.uname, m.gname), ("root", "root"), path)
            self.assertFalse(m.mode & 0o6000, "setuid/setgid: " + path)
            self.assertFalse(path.startswith(("usr/local", "build", "var/", "tmp")), path)

    def test_conffile_is_the_sample(self):
        self.assertEqual(self.ctl("conffiles").split(), ["/etc/untild/untild.conf"])
        sample = read(os.path.join(ROOT, "etc/untild.conf.sample"))
        self.assertEqual(read(os.path.join(self.x, "etc/untild/untild.conf")), sample)
        self.assertEqual(read(os.path.join(self.x, "usr/share/untild/untild.conf.sample")), sample)
        # It is valid as shipped.
        r = subprocess.run([os.path.join(self.x, "usr/sbin/untild"), "-t", "-c",
                            os.path.join(self.x, "etc/untild/untild.conf")], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_units_point_at_the_installed_paths(self):
        unit = read(os.path.join(self.x, "lib/systemd/system/untild.service"))
        self.assertIn("\nExecStart=/usr/sbin/untild -c /etc/untild/untild.conf\n", unit)
        user = read(os.path.join(self.x, "usr/lib/systemd/user/untild.service"))
        self.assertIn("\nExecStart=/usr/sbin/untild ", user)

    @unittest.skipUnless(shutil.which("systemd-analyze"), "needs systemd-analyze")
    def test_unit_with_guard_verifies(self):
        d = os.path.join(self.tmp, "units")
        os.makedirs(os.path.join(d, "untild.service.d"), exist_ok=True)
        unit = read(os.path.join(self.x, "lib/systemd/system/untild.service"))
        with open(os.path.join(d, "untild.service"), "w") as f:
            f.write(unit.replace("ExecStart=/usr/sbin/untild ",
                                 "ExecStart=%s/usr/sbin/untild " % self.x))
        shutil.copy(os.path.join(self.x, "lib/systemd/system/untild.service.d/untild-sample-guard.conf"),
                    os.path.join(d, "untild.service.d"))
        env = dict(os.environ, MANPATH=os.path.join(self.x, "usr/share/man"))
        r = subprocess.run(["systemd-analyze", "verify", os.path.join(d, "untild.service")],
                           capture_output=True, text=True, env=env)
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))

    def test_guard_skips_the_unedited_sample_only(self):
        """The drop-in's ExecCondition, run against the extracted tree: exit
        1 (systemd skips the start) on the sample, 0 once edited, 0 when
        the config cannot be read (the daemon then says why)."""
        guard = read(os.path.join(self.x, "lib/systemd/system/untild.service.d/untild-sample-guard.conf"))
        line = [ln for ln in guard.splitlines() if ln.startswith("ExecCondition=")]
        self.assertEqual(len(line), 1, guard)
        argv = shlex.split(line[0][len("ExecCondition="):])
        self.assertEqual(argv[:2], ["/bin/sh", "-c"])
        conf = os.path.join(self.tmp, "guard.conf")
        script = argv[2].replace("/etc/untild/untild.conf", conf).replace(
            "/usr/share/untild/", os.path.join(self.x, "usr/share/untild/"))
        shutil.copy(os.path.join(self.x, "etc/untild/untild.conf"), conf)
        r = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("still the unedited sample", r.stderr)
        with open(conf, "a") as f:
            f.write("[daemon]\nowner = admin@example.com\n")
        r = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        os.unlink(conf)
        r = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0)

    @unittest.skipUnless(shutil.which("lintian"), "lintian missing: apt-get install lintian")
    def test_lintian_clean(self):
        # -I: informational tags are shown (and must be overridden with a
        # reason in debian/untild.lintian-overrides) but only E and W fail.
        r = subprocess.run(["lintian", "-I", "--pedantic", "--tag-display-limit", "0", self.deb],
                           capture_output=True, text=True, timeout=600)
        tags = [ln for ln in r.stdout.splitlines() if re.match(r"^[EWIP]: ", ln)]
        bad = [ln for ln in tags if ln[0] in "EW"]
        self.assertEqual(bad, [], "\n".join(tags))
        self.assertNotIn(r.returncode, (2,), r.stderr)

    # ---- maintainer scripts -----------------------------------------------------

    def test_maintainer_scripts_shape(self):
        for name in ("postinst", "prerm", "postrm"):
            path = os.path.join(self.tmp, "control", name)
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o755, name)
            text = read(path)
            self.assertTrue(text.startswith("#!/bin/sh\nset -e\n"), name)
            r = subprocess.run(["sh", "-n", path], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
        post = self.ctl("postinst")
        # The user exists before /run/untild is made for it, and both before
        # the unit is enabled and started.
        order = [post.find(s) for s in ("systemd-sysusers", "systemd-tmpfiles ",
                                        "deb-systemd-helper enable 'untild.service'",
                                        "deb-systemd-invoke $_dh_action 'untild.service'")]
        self.assertTrue(all(i >= 0 for i in order), order)
        self.assertEqual(order, sorted(order))
        # The user unit: installed, enabled for nobody.
        self.assertIn("deb-systemd-helper --user debian-installed 'untild.service'", post)
        self.assertNotIn("--global", post)
        self.assertIn("deb-systemd-invoke stop 'untild.service'", self.ctl("prerm"))
        self.assertIn("deb-systemd-helper purge 'untild.service'", self.ctl("postrm"))

    def test_install_and_purge_in_a_throwaway_root(self):
        """dpkg --root: the scripts run chrootless with DPKG_ROOT set, so
        sysusers, tmpfiles and deb-systemd-helper work on that root only;
        a policy-rc.d there forbids starting anything."""
        root = os.path.join(self.tmp, "root")
        for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "usr/sbin"):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        open(os.path.join(root, "var/lib/dpkg/status"), "w").close()
        prc = os.path.join(root, "usr/sbin/policy-rc.d")
        with open(prc, "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod(prc, 0o755)
        dpkg = ["dpkg", "--root=" + root, "--force-depends", "--force-script-chrootless"]
        if os.geteuid() != 0:
            dpkg.append("--force-not-root")
        r = subprocess.run(dpkg + ["-i", self.deb], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        st = subprocess.run(dpkg + ["-s", "untild"], capture_output=True, text=True).stdout
        self.assertIn("Status: install ok installed", st)
        self.assertIn("Conffiles:\n /etc/untild/untild.conf ", st)
        self.assertIn("Version: " + self.version, st)
        p = lambda *a: os.path.join(root, *a)
        if os.geteuid() == 0:
            users = {ln.split(":")[0]: ln.split(":") for ln in read(p("etc/passwd")).splitlines()}
            groups = {ln.split(":")[0] for ln in read(p("etc/group")).splitlines()}
            self.assertIn("untild", users)
            self.assertEqual(users["untild"][5], "/var/lib/untild")
            self.assertIn("untild-admin", groups)
            self.assertEqual(os.stat(p("run/untild")).st_uid, int(users["untild"][2]))
        wants = p("etc/systemd/system/multi-user.target.wants/untild.service")
        self.assertEqual(os.readlink(wants), "/lib/systemd/system/untild.service")
        self.assertFalse(os.path.lexists(p("etc/systemd/user/default.target.wants/untild.service")))
        self.assertTrue(os.access(p("usr/sbin/untild"), os.X_OK))

        r = subprocess.run(dpkg + ["--purge", "untild"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for gone in ("etc/untild/untild.conf", "usr/sbin/untild", "lib/systemd/system/untild.service",
                     "etc/systemd/system/multi-user.target.wants/untild.service"):
            self.assertFalse(os.path.lexists(p(gone)), gone)


if __name__ == "__main__":
    unittest.main()
