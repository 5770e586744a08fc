"""Repository-wide pytest hooks.

`make test` sets DEPLOYER_STRICT=1: then a test that skips itself (for instance because
a service's address is not configured) fails the run instead, so nothing is skipped silently.
"""

from __future__ import annotations

import os

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("DEPLOYER_STRICT") == "1" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"skipped in a strict run (DEPLOYER_STRICT=1): {reason}"
