"""`deployer hooks install|uninstall`, `deployer gate` and `deployer checks`: the merge gate from a terminal."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deployer.hooks_install import install, uninstall


def cmd_hooks(args: argparse.Namespace) -> int:
    """Install or uninstall the git hooks in a repository."""
    if args.action == "install":
        result = install(Path(args.repo), server=args.server, token=args.token, fail_mode=args.fail_mode,
                         protected=args.protected, fast_checks=args.fast_checks, timeout=args.timeout)
    else:
        result = uninstall(Path(args.repo))
    print(result.describe())
    return 0


def add_gate_commands(sub: Any, service: Callable[[argparse.Namespace], Any]) -> None:
    """Register the hooks, gate and checks sub-commands."""
    p = sub.add_parser("hooks", help="install or uninstall the merge gate's git hooks in a repository")
    p.add_argument("action", choices=["install", "uninstall"])
    p.add_argument("--repo", required=True, help="a bare central repository (pre-receive, post-receive) or a "
                                                 "clone (pre-push)")
    p.add_argument("--server", help="the platform's URL, e.g. http://127.0.0.1:8000")
    p.add_argument("--token", help="API token the hooks use (release_manager, to report pushes)")
    p.add_argument("--fail-mode", choices=["open", "closed"], help="when the platform cannot answer in time")
    p.add_argument("--protected", action="append", help="a protected branch (repeat; default main)")
    p.add_argument("--fast-checks", help="pre-push: shell command run before a push to a protected branch")
    p.add_argument("--timeout", type=float, help="seconds to wait for the platform (default 5)")
    p.set_defaults(func=cmd_hooks)

    def cmd_gate(args: argparse.Namespace) -> int:
        gate = service(args).gate
        view = gate.gate(branch=args.branch, sha=args.sha)
        print(view.model_dump_json(indent=2) if args.json else ("allowed: " if view.allowed else "refused: ")
              + view.reason)
        return 0 if view.allowed else 1

    p = sub.add_parser("gate", help="may this commit be merged to this branch now?")
    p.add_argument("--branch", default="main")
    p.add_argument("--sha", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_gate)

    def cmd_checks(args: argparse.Namespace) -> int:
        checks = service(args).gate.checks
        views = checks.of(args.sha) if args.sha else checks.recent(limit=args.limit)
        if args.json:
            print(json.dumps([v.model_dump(mode="json") for v in views], indent=2))
        for v in [] if args.json else views:
            print(f"{v.sha[:12]} {v.name:6} {v.state.value:8} {v.detail}")
        return 0

    p = sub.add_parser("checks", help="the required checks of a commit (or the newest ones)")
    p.add_argument("sha", nargs="?")
    p.add_argument("--limit", type=int, default=30)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_checks)
