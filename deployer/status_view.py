"""Plain-text rendering of the controller's status for `deployer status` and the demo."""

from __future__ import annotations

from typing import Any

from deployer.views import StatusView


def short(sha: str | None) -> str:
    """The 10-character form of a sha, or '-'."""
    return sha[:10] if sha else "-"


def render_status(view: StatusView) -> str:
    """Hosts with their versions, the deployment in flight, and the last releases."""
    status: dict[str, Any] = view.model_dump(mode="json")
    lines = ["HOSTS"]
    for h in status["hosts"]:
        drift = "" if h["desired_version"] == h["observed_version"] else f"  (wants {short(h['desired_version'])})"
        lines.append(f"  {h['name']:10} {short(h['observed_version']):11} {'healthy' if h['healthy'] else 'DOWN':8}"
                     f" {h['role']:9}{drift}")
    active = status["active"]
    lines.append("")
    leader = status.get("leader")
    if leader:
        # A leader killed without warning leaves its row behind until a standby takes over.
        quiet = f" (no heartbeat for {leader['heartbeat_age_s']:.0f}s)" if leader["heartbeat_age_s"] > 10 else ""
        lines.append(f"LEADER {leader['host']} pid {leader['pid']} since {leader['since']}{quiet}")
    else:
        lines.append("LEADER none yet (no controller has run)")
    if status.get("lock"):
        lock = status["lock"]
        lines.append(f"PIPELINE LOCKED by {lock['holder']}: {lock['reason']}")
    window = status.get("window")
    if window and not window["open"]:
        until = f"until {window['until']}" if window["until"] else "until someone unfreezes"
        lines.append(f"DEPLOYS HELD {until}: {window['reason']} ({window['waiting']} commit(s) queued)")
    if active:
        where = active["status"] + (f"/{active['phase']}" if active["phase"] else "")
        lines.append(f"DEPLOYING release {active['release_id']} ({short(active['version'])}): {where}, "
                     f"wave {active['wave']} of {active['waves'] - 1}")
        if active.get("last_verdict"):
            verdict = active["last_verdict"]
            lines.append(f"  analysis: {verdict.get('verdict') or 'watching'} — {verdict.get('reason', '')}")
    else:
        lines.append("PIPELINE idle")
    lines.append("")
    lines.append("LAST RELEASES")
    for r in status["releases"]:
        lines.append(f"  #{r['id']:<4} {short(r['sha']):11} {r['kind']:9} {r['status']:13} "
                     f"{len(r['commits'])} commit(s)  {(r.get('reason') or '').splitlines()[0][:70] if r.get('reason') else ''}")
    return "\n".join(lines)
