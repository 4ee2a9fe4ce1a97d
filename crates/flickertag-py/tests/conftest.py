"""With FLICKERTAG_REQUIRE_ALL=1 (as .ci/run sets it), a skipped test fails the run: a
test that skips is a test that did not run. The one exception is torch, which PyPI only
ships with its CUDA libraries (gigabytes): the tests that need it say so in their skip
reason ("torch is not installed") and run wherever torch is (the bench environment)."""

import os

import pytest

_skipped = []


def pytest_runtest_logreport(report):
    if report.skipped and os.environ.get("FLICKERTAG_REQUIRE_ALL") == "1":
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if "torch is not installed" not in reason:
            _skipped.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session, exitstatus):
    if _skipped:
        print("\nFLICKERTAG_REQUIRE_ALL=1: these tests skipped, so the run fails:\n  " + "\n  ".join(_skipped))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
