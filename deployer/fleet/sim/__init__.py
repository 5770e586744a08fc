"""A SIMULATED fleet: hosts that exist only in memory, on a clock that can be simulated.

For scale benchmarks (`bench/scale.py`) and tests of wave planning at thousands of hosts;
never in place of a real backend in an integration test. It implements the seam's
protocols (`HostRuntime`, `Router`, and the health wait), so the controller drives it
through the same `RoutedFleet` and the same host replacement as a real backend.
"""

from deployer.fleet.sim.clock import RealClock, SimClock, SimTime
from deployer.fleet.sim.fleet import SimBuilder, SimFleet, build_sim_fleet
from deployer.fleet.sim.runtime import SimHealth, SimRouter, SimRuntime, StartTimes

__all__ = ["RealClock", "SimBuilder", "SimClock", "SimFleet", "SimHealth", "SimRouter", "SimRuntime", "SimTime",
           "StartTimes", "build_sim_fleet"]
