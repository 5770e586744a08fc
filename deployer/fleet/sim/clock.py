"""Time for the simulated fleet: real time, or a simulated clock a driver moves forward.

With `SimClock` nothing advances by itself. Host work sleeps on the clock (`sleep`), and
the driver (a benchmark or a test) ticks the controller, waits until every host worker is
asleep or finished (`wait_quiescent`), then moves time to the next tick (`advance_to`).
A 10-minute rollout of 10,000 hosts then takes as long as the controller's own work.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from typing import Protocol


class SimTime(Protocol):
    """What the simulated hosts need of time."""

    def now(self) -> float:
        """Seconds on this clock."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let `seconds` pass on this clock."""
        ...


class RealClock:
    """The simulated fleet in real time (e.g. `deployer run` with `fleet.backend: sim`)."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    def __call__(self) -> float:
        return self.now()


class SimClock:
    """A clock that moves only when told; sleepers wake when it passes their time."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._cond = threading.Condition()
        self._wakeups: list[float] = []   # heap of wake times of sleeping threads
        self._sleeping = 0

    def now(self) -> float:
        return self._now

    def __call__(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        with self._cond:
            wake = self._now + max(0.0, seconds)
            if wake <= self._now:
                return
            heapq.heappush(self._wakeups, wake)
            self._sleeping += 1
            self._cond.notify_all()
            while self._now < wake:
                self._cond.wait()

    def sleeping(self) -> int:
        """Threads asleep on this clock right now."""
        with self._cond:
            return self._sleeping

    def next_wakeup(self) -> float | None:
        with self._cond:
            return self._wakeups[0] if self._wakeups else None

    def advance_to(self, moment: float) -> None:
        """Move time to `moment` (never backwards) and wake whoever was due."""
        with self._cond:
            self._now = max(self._now, moment)
            while self._wakeups and self._wakeups[0] <= self._now:
                heapq.heappop(self._wakeups)
                self._sleeping -= 1  # counted awake from now, before the thread even runs
            self._cond.notify_all()

    def release(self) -> None:
        """Wake every sleeper for good (shutting down: nothing simulated is waited for any more)."""
        self.advance_to(float("inf"))

    def notify(self) -> None:
        """Something finished (a host worker): let `wait_quiescent` look again."""
        with self._cond:
            self._cond.notify_all()

    def wait_quiescent(self, running: Callable[[], int], timeout: float = 60.0) -> None:
        """Block until every running worker is asleep on this clock (`running()` counts them)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while running() > self._sleeping:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{running()} host workers still busy, {self._sleeping} asleep")
                self._cond.wait(min(left, 0.05))
