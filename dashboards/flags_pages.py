"""The Flags page: every live flag with its state, and the forms that create, switch, roll out and delete them.

Any signed-in user sees the page; the forms act for release managers only (a viewer's
attempt comes back to the page refused, with 403 in X-Action-Refused, like every action).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Path, Request
from fastapi.responses import Response

from dashboards.pages import User, render, run_action, safe_next, service_of
from dashboards.security import csrf_ok
from deployer.service import BadInput, DeployService, Principal, parse_percentage

router = APIRouter(include_in_schema=False)
ACTIONS = {"create", "on", "off", "percentage", "delete"}


@router.get("/flags")
def flags_page(request: Request, user: User) -> Response:
    """Every live flag: on or off, percentage, allow/deny counts, who changed it last and when."""
    return render(request, "flags.html", user, flags=service_of(request).flags())


@router.post("/flags/actions/{action}")
def flag_action(request: Request, user: User, action: Annotated[str, Path(max_length=20)],
                csrf_token: Annotated[str, Form()] = "", reason: Annotated[str, Form(max_length=1000)] = "",
                key: Annotated[str, Form(max_length=200)] = "",
                description: Annotated[str, Form(max_length=1000)] = "",
                percentage: Annotated[str, Form(max_length=40)] = "", enabled: Annotated[bool, Form()] = False,
                next: Annotated[str, Form()] = "/flags") -> Response:
    back = safe_next(next)
    if not csrf_ok(request.session, csrf_token):
        raise HTTPException(403, "missing or wrong CSRF token; reload the page and try again")
    if action not in ACTIONS:
        raise HTTPException(404, f"no flag action \"{action}\"; use one of {', '.join(sorted(ACTIONS))}")
    return run_action(request, user, back, f"flag {action}",
                      lambda: _do(service_of(request), action, user=user, key=key.strip(), reason=reason,
                                  description=description, percentage=percentage.strip(), enabled=enabled))


def _do(service: DeployService, action: str, *, user: Principal, key: str, reason: str, description: str,
        percentage: str, enabled: bool) -> str:
    if action == "create":
        share = parse_percentage(percentage, field="percentage") if percentage else 0.0
        made = service.create_flag(key, actor=user.name, reason=reason, description=description, enabled=enabled,
                                   percentage=share)
        return f"flag {made.key} created, {'on' if made.enabled else 'off'} ({made.percentage:g}% when on)"
    if action in ("on", "off"):
        changed = service.change_flag(key, actor=user.name, reason=reason, enabled=action == "on")
        return f"flag {changed.key} is {action}"
    if action == "percentage":
        if not percentage:
            raise BadInput("percentage: is empty; give a share of users, e.g. 5")
        changed = service.change_flag(key, actor=user.name, reason=reason,
                                      percentage=parse_percentage(percentage, field="percentage"))
        return f"flag {changed.key} at {changed.percentage:g}%" + ("" if changed.enabled else " (it is off)")
    service.delete_flag(key, actor=user.name, reason=reason)
    return f"flag {key} deleted: hosts stop receiving it, so it is off for everyone"
