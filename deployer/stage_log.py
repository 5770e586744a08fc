"""Keep a deployment's stage timeline true: close the rollout stages an event ends.

Tests and builds close their own stages (their jobs write the outcome). The rollout
stages (`wave-N`, `bake-N`, `rollback`) are opened by the controller and end with a
pipeline event: a wave when its hosts converged, a bake when its analysis passed or the
operator promoted it, and all of them when the release is rolled back or finishes. Without
this the timeline of a rolled-back release would show its wave "running" for ever.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session

from deployer import store
from deployer.model import StageStatus
from deployer.pipeline import Effect, Event, Finish, RollBack, Status

ROLLOUT_STAGES = ("wave", "bake", "rollback")


def _kind(name: str) -> str:
    return name.split("-", 1)[0]


def _passes(kind: str, event: Event) -> bool:
    return ((kind == "wave" and event is Event.WAVE_DEPLOYED)
            or (kind == "bake" and event in (Event.ANALYSIS_PASSED, Event.PROMOTE))
            or (kind == "rollback" and event is Event.ROLLBACK_DONE))


def record_event(session: Session, *, deployment_id: int, event: Event, effects: Sequence[Effect],
                 reason: str = "") -> None:
    """Close the running rollout stages `event` ended, and open the rollback stage it started."""
    rolls_back = any(isinstance(e, RollBack) for e in effects)
    finish = next((e for e in effects if isinstance(e, Finish)), None)
    why = f"{event.value}: {reason}" if reason else event.value
    rollback_running = False
    for stage in store.stages_of(session, deployment_id=deployment_id):
        kind = _kind(stage.name)
        if stage.status is not StageStatus.RUNNING or kind not in ROLLOUT_STAGES:
            continue
        assert stage.id is not None
        if _passes(kind, event):
            store.finish_stage(session, stage_id=stage.id, passed=True, detail=stage.detail)
        elif kind == "rollback" and rolls_back:
            rollback_running = True  # another attempt of the same rollback: the stage goes on
        elif rolls_back or finish is not None:
            passed = finish is not None and finish.status is Status.SUCCEEDED and kind != "rollback"
            store.finish_stage(session, stage_id=stage.id, passed=passed,
                               detail=stage.detail if passed else f"stopped by {why}")
    if rolls_back and not rollback_running:
        store.start_stage(session, deployment_id=deployment_id, name="rollback", detail=why)
