"""Run the real controller against a simulated fleet on a simulated clock, tick by tick.

Each step ticks the controller (in the caller's thread, as `Controller.run` would), waits
until every host worker is asleep on the clock or finished, then moves time forward by
one tick. The controller never waits for hosts, so this is exactly its loop, minus the
real seconds between ticks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from deployer.controller import Controller
from deployer.fleet.sim.clock import SimClock


@dataclass
class SimDriver:
    """Steps `controller` on `clock`; `tick_s` of simulated time per step."""

    controller: Controller
    clock: SimClock
    tick_s: float
    tick_wall_s: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.controller.hosts.pool.on_done = self.clock.notify

    def recover(self, timeout_s: float = 600.0) -> None:
        """`controller.recover()` (which may converge the fleet) while simulated time moves on."""
        errors: list[BaseException] = []

        def run() -> None:
            try:
                self.controller.recover()
            except BaseException as exc:  # re-raised in the caller's thread
                errors.append(exc)

        thread = threading.Thread(target=run, name="recover", daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout_s
        while thread.is_alive():
            if time.monotonic() > deadline:
                raise TimeoutError("recovery did not finish")
            self._settle_and_advance()
            thread.join(0.002)
        if errors:
            raise errors[0]

    def step(self) -> None:
        """One tick of the controller, then one tick of simulated time."""
        began = time.perf_counter()
        self.controller.tick()
        self.tick_wall_s.append(time.perf_counter() - began)
        self._settle_and_advance()

    def run_until(self, done: Callable[[], bool], *, max_sim_s: float, real_pause_s: float = 0.0,
                  pause_while: Callable[[], bool] = lambda: False) -> None:
        """Step until `done()`; `pause_while()` gives real time to real work (test and build jobs)."""
        limit = self.clock.now() + max_sim_s
        while not done():
            if self.clock.now() > limit:
                raise TimeoutError(f"not done after {max_sim_s:g} simulated seconds")
            self.step()
            if real_pause_s and pause_while():
                time.sleep(real_pause_s)

    def _settle_and_advance(self) -> None:
        self.clock.wait_quiescent(self.controller.hosts.pool.running)
        self.clock.advance_to(self.clock.now() + self.tick_s)
