"""The chaos suite's seed, its summary, and the replay hint on every failure.

`CHAOS_SEED=<n>` replays a run; `CHAOS_KILLS=<n>` sets how many instants the controller is
killed at (default sized so the whole suite stays within a few minutes; 50 for the full sweep).
"""

from __future__ import annotations

import os
import random
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

SEED = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1 << 31))
KILLS = int(os.environ.get("CHAOS_KILLS") or 3)


@dataclass
class Ledger:
    """What the trials did: one entry per trial, and the invariant violations found after each."""

    trials: list[tuple[str, float]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        times = [t for _, t in self.trials]
        lines = [f"chaos seed {SEED} (replay: CHAOS_SEED={SEED} CHAOS_KILLS={KILLS})",
                 f"trials run: {len(self.trials)}, invariant violations: {len(self.violations)}"]
        if times:
            lines.append(f"time to recover: median {statistics.median(times):.1f}s, max {max(times):.1f}s")
        for name, seconds in self.trials:
            lines.append(f"  {name}: recovered in {seconds:.1f}s")
        lines += [f"  {note}" for note in self.notes]
        lines += [f"  VIOLATION {v}" for v in self.violations]
        return lines


LEDGER = Ledger()


@pytest.fixture(scope="session")
def rng() -> Iterator[random.Random]:
    yield random.Random(SEED)


@pytest.fixture(scope="session")
def ledger() -> Ledger:
    return LEDGER


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.failed and "tests/chaos" in str(item.fspath):
        report.sections.append(("chaos replay", f"replay this run with CHAOS_SEED={SEED} CHAOS_KILLS={KILLS}"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if LEDGER.trials or LEDGER.violations:
        terminalreporter.section("chaos summary")
        for line in LEDGER.lines():
            terminalreporter.write_line(line)
