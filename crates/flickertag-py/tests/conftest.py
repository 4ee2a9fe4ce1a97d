"""With FLICKERTAG_REQUIRE_ALL=1 (as .ci/run sets it), a skipped test fails the run: a
test that skips is a test that did not run. `make test` installs torch and
torch-pruning, so the torch oracles run too; without them (a bare `pytest` elsewhere)
those tests skip, saying what is missing."""

import os

import pytest

_skipped = []


def pytest_runtest_logreport(report):
    if report.skipped and os.environ.get("FLICKERTAG_REQUIRE_ALL") == "1":
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skipped.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session, exitstatus):
    if _skipped:
        print("\nFLICKERTAG_REQUIRE_ALL=1: these tests skipped, so the run fails:\n  " + "\n  ".join(_skipped))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
