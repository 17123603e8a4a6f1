#!/usr/bin/python3
"""Run the end-to-end suites (tests/e2e/test_*.py) and print one line per
test ("PASS name" / "FAIL name") and a closing "e2e: N passed, N failed".

Usage: run.py [--build DIR] [-k PATTERN] [MODULE...]"""
import argparse
import os
import sys
import unittest

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)


class Result(unittest.TextTestResult):
    def addSuccess(self, test):
        super().addSuccess(test)
        print("PASS", test.id(), flush=True)

    def _fail(self, test, err, kind):
        print("FAIL", test.id(), "(%s)" % kind, flush=True)
        print(self._exc_info_to_string(err, test), flush=True)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._fail(test, err, "failure")

    def addError(self, test, err):
        super().addError(test, err)
        self._fail(test, err, "error")

    def addSubTest(self, test, subtest, err):
        # A failed subtest fails its test without addFailure: say which.
        super().addSubTest(test, subtest, err)
        if err is not None:
            print("FAIL", subtest.id(), "(subtest)", flush=True)
            print(self._exc_info_to_string(err, test), flush=True)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        print("SKIP", test.id(), reason, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("-k", dest="pattern")
    ap.add_argument("modules", nargs="*")
    a = ap.parse_args()
    os.environ["UNTILD_BUILD"] = os.path.abspath(a.build)
    loader = unittest.TestLoader()
    if a.pattern:
        loader.testNamePatterns = ["*%s*" % a.pattern]
    if a.modules:
        suite = unittest.TestSuite(loader.loadTestsFromName(m) for m in a.modules)
    else:
        suite = loader.discover(here, pattern="test_*.py", top_level_dir=here)
    runner = unittest.TextTestRunner(resultclass=Result, verbosity=0, stream=open(os.devnull, "w"))
    r = runner.run(suite)
    failed = len(r.failures) + len(r.errors)
    print("e2e: %d passed, %d failed" % (r.testsRun - failed - len(r.skipped), failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
