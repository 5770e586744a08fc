"""The demo's JSON report and the checks that say whether the platform did its job."""

from __future__ import annotations

from datetime import datetime
from statistics import median
from typing import Any

from deployer.demo.scenario import ScriptedCommit
from deployer.service import DeployService
from deployer.settings import Settings

STOPPED = {"tests_failed", "build_failed", "rolled_back"}


def _seconds_between(a: str | None, b: str | None) -> float | None:
    if not a or not b:
        return None
    return round((datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds(), 2)


def _first(events: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    return next((e for e in events if all(e.get(k) == v for k, v in match.items())), None)


def release_timeline(detail: dict[str, Any]) -> dict[str, Any]:
    """Key moments of one deployment: when the canary served, when it was judged, when it ended."""
    events = [e for e in detail["events"] if e["kind"] == "transition"]
    created = detail["created_at"]
    serving = _first(events, event="wave_deployed", **{"from": "canary/deploying"})
    failed = _first(events, event="analysis_failed") or _first(events, event="host_failed")
    done = _first(events, event="rollback_done") or _first(events, to="succeeded") \
        or _first(events, to="tests_failed")
    return {
        "canary_serving_at": serving["at"] if serving else None,
        "canary_failed_after_s": _seconds_between(serving["at"] if serving else None, failed["at"] if failed else None),
        "serving_to_rollback_done_s": _seconds_between(serving["at"] if serving else None,
                                                       done["at"] if done and done["event"] == "rollback_done"
                                                       else None),
        "total_s": _seconds_between(created, done["at"] if done else detail.get("finished_at")),
    }


def build_report(*, service: DeployService, scripted: list[ScriptedCommit], shas: dict[str, str],
                 fleet_versions: dict[str, str | None], traffic: dict[str, Any], duration_s: float,
                 settings: Settings, merges: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Everything the demo showed, with pass/fail checks; `merges` are the merge attempts through the gate."""
    merges = merges or []
    refused = {key: m for m in merges if not m["accepted"] for key in m["keys"]}
    commits = {c.sha: c.model_dump(mode="json") for c in service.commits()}
    status = service.status(releases=200).model_dump(mode="json")
    releases = {r["id"]: r for r in status["releases"]}
    details = {r["deployment_id"]: service.deployment(r["deployment_id"]).model_dump(mode="json", by_alias=True)
               for r in releases.values() if r["deployment_id"]}
    by_release = {d["release_id"]: d for d in details.values()}

    rows = []
    for item in scripted:
        sha = shas[item.key]
        commit = commits.get(sha, {})
        release = releases.get(commit.get("release_id"))
        detail = by_release.get(commit.get("release_id"))
        rows.append({
            "sha": sha, "key": item.key, "title": commit.get("title", item.title), "author": item.author,
            "kind": item.kind, "expected": item.expected,
            "outcome": release["status"] if release else ("refused" if item.key in refused else "not released"),
            "commit_status": commit.get("status"), "release_id": commit.get("release_id"),
            "release_kind": release["kind"] if release else None,
            "reason": ((release.get("reason") or "").splitlines()[0][:300] if release
                       else refused[item.key]["reason"][:300] if item.key in refused else ""),
            "timeline": release_timeline(detail) if detail else None,
        })

    # Where did each stop commit's code run? Only on canary hosts, or it escaped.
    escaped = []
    for row in rows:
        if row["expected"] != "stop":
            continue
        for detail in details.values():
            if detail["version"] != row["sha"]:
                continue
            allowed = set(detail["canary_hosts"])
            for event in detail["events"]:
                if event["kind"] == "host_deployed" and event["data"].get("version") == row["sha"] \
                        and event["data"].get("host") not in allowed:
                    escaped.append({"sha": row["sha"], "host": event["data"]["host"]})

    last_good = next((shas[c.key] for c in reversed(scripted) if c.expected == "ship"), None)
    restart_failures = int(traffic.get("balancer_errors", 0)) + int(traffic.get("transport_errors", 0))
    checks = {
        "ship_commits_reached_fleet": all(r["outcome"] == "succeeded" and r["commit_status"] == "shipped"
                                          for r in rows if r["expected"] == "ship"),
        "stop_commits_stopped": all(r["outcome"] in STOPPED and r["commit_status"] == "bad"
                                    for r in rows if r["expected"] == "stop"),
        "stop_commits_never_beyond_canary": not escaped,
        "refuse_commits_refused_at_merge": all(r["outcome"] == "refused" for r in rows if r["expected"] == "refuse"),
        "fleet_on_last_good_commit": bool(fleet_versions) and all(v == last_good for v in fleet_versions.values()),
        "no_failed_requests_from_restarts": restart_failures == 0,
    }
    checks["passed"] = all(checks.values())
    spike = next((r for r in rows if r["kind"] == "error-spike"), None)
    durations = [d for r in details.values() if (d := release_timeline(r)["total_s"]) is not None]
    return {
        "scenario": {"commits": rows, "escaped": escaped},
        "merge_gate": {
            "merges": len(merges), "refused": len([m for m in merges if not m["accepted"]]),
            "refusals": [{"step": m["step"], "sha": m["sha"], "branch": m["branch"], "reason": m["reason"],
                          "checks": m["checks"]} for m in merges if not m["accepted"]],
        },
        "fleet_versions": fleet_versions,
        "last_good_commit": last_good,
        "checks": checks,
        "traffic": {**traffic, "restart_failures": restart_failures},
        "timings": {
            "duration_s": round(duration_s, 1),
            "releases": len([r for r in releases.values() if r["kind"] != "bootstrap"]),
            "median_release_s": round(median(durations), 1) if durations else None,
            "error_spike_serving_to_rollback_done_s":
                spike["timeline"]["serving_to_rollback_done_s"] if spike and spike["timeline"] else None,
        },
        "settings": {"hosts": settings.fleet.hosts, "canary_bake_s": settings.rollout.canary_bake,
                     "wave_bake_s": settings.rollout.wave_bake, "analysis_interval_s": settings.analysis.interval},
    }


def summary_lines(report: dict[str, Any]) -> list[str]:
    """A human summary of the report."""
    lines = ["", "SCENARIO"]
    for row in report["scenario"]["commits"]:
        ok = {"ship": row["outcome"] == "succeeded", "refuse": row["outcome"] == "refused",
              "stop": row["outcome"] in STOPPED}[row["expected"]]
        lines.append(f"  {'ok ' if ok else 'BAD'} {row['sha'][:10]} {row['kind']:15} expected {row['expected']:6} "
                     f"-> {row['outcome']:12} {row['title'][:60]}")
    gate = report.get("merge_gate", {})
    lines.append(f"merge gate: {gate.get('merges', 0)} merges, {gate.get('refused', 0)} refused")
    for refusal in gate.get("refusals", []):
        lines.append(f"  step {refusal['step']} {refusal['sha'][:10]}: {refusal['reason'][:150]}")
    timings, traffic = report["timings"], report["traffic"]
    lines.append("")
    fleet = ", ".join(f"{host}={(version or '-')[:10]}" for host, version in report["fleet_versions"].items())
    lines.append(f"fleet: {fleet}")
    lines.append(f"releases: {timings['releases']} in {timings['duration_s']}s "
                 f"(median {timings['median_release_s']}s per release)")
    lines.append(f"5xx spike: bad canary serving -> rollback done in "
                 f"{timings['error_spike_serving_to_rollback_done_s']}s")
    lines.append(f"traffic: {traffic.get('sent')} requests, {traffic.get('failed')} failed for users "
                 f"({traffic.get('server_errors')} app 5xx and {traffic.get('client_errors')} unexpected 4xx from bad "
                 f"canaries), {traffic['restart_failures']} failed because of restarts")
    lines.append("checks: " + ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in report["checks"].items()))
    return lines
