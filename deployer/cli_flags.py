"""`deployer flags list|show|create|set|delete`: feature flags from a terminal, audited under the OS user."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from deployer.flag_rules import parse_percentage, parse_users

if TYPE_CHECKING:
    from deployer.service import DeployService, FlagView

ServiceFactory = Callable[[argparse.Namespace], "DeployService"]


def describe(flag: FlagView) -> str:
    """One line per flag: key, on/off, percentage, list sizes, revision, last change."""
    when = f"{flag.updated_at:%Y-%m-%d %H:%M} UTC" if flag.updated_at else "-"
    return (f"{flag.key:24} {'on' if flag.enabled else 'off':4} {flag.percentage:>7g}% "
            f"allow {len(flag.allow):<4} deny {len(flag.deny):<4} rev {flag.revision:<4} {flag.updated_by} {when}")


def _details(flag: FlagView) -> str:
    lines = [describe(flag)]
    if flag.description:
        lines.append(f"  description: {flag.description}")
    lines.append(f"  allow: {', '.join(flag.allow) or '-'}")
    lines.append(f"  deny: {', '.join(flag.deny) or '-'}")
    lines.append(f"  salt: {flag.salt or '-'}   created by {flag.created_by or '-'}")
    return "\n".join(lines)


def _users(text: str | None) -> list[str] | None:
    return None if text is None else parse_users(text)


def add_flag_commands(sub: Any, service: ServiceFactory) -> None:
    """Register `deployer flags ...`."""
    flags = sub.add_parser("flags", help="feature flags the app's hosts fetch and evaluate").add_subparsers(
        dest="flags_cmd", required=True, metavar="ACTION")

    def cmd_list(args: argparse.Namespace) -> int:
        found = service(args).flags()
        if args.json:
            print(found.model_dump_json(indent=2))
            return 0
        for flag in found.flags:
            print(describe(flag))
        print(f"{len(found.flags)} flag(s), revision {found.revision}")
        return 0

    p = flags.add_parser("list", help="every flag: on/off, percentage, allow/deny sizes, last change")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    def cmd_show(args: argparse.Namespace) -> int:
        flag = service(args).flag(args.key)
        print(flag.model_dump_json(indent=2) if args.json else _details(flag))
        return 0

    p = flags.add_parser("show", help="one flag in full")
    p.add_argument("key")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    def cmd_create(args: argparse.Namespace) -> int:
        percentage = parse_percentage(args.percentage) if args.percentage is not None else 0.0
        flag = service(args).create_flag(args.key, actor=args.actor, reason=args.reason,
                                         description=args.description, enabled=args.enabled, percentage=percentage,
                                         allow=_users(args.allow) or [], deny=_users(args.deny) or [],
                                         salt=args.salt)
        print(f"flag created: {describe(flag)}")
        return 0

    p = flags.add_parser("create", help="a new flag (off unless --enabled)")
    p.add_argument("key", help="1-64 characters of a-z, 0-9, \"_\", \".\", \"-\", e.g. new-feed")
    p.add_argument("--description", default="")
    p.add_argument("--percentage", default=None, help="share of users who get it while on, 0-100 (default 0)")
    p.add_argument("--enabled", action="store_true", help="on from the start")
    p.add_argument("--allow", default=None, help="users who always get it while on, comma-separated")
    p.add_argument("--deny", default=None, help="users who never get it, comma-separated")
    p.add_argument("--salt", default=None, help="default: a random one (a new salt reshuffles the users' buckets)")
    _add_change_options(p)
    p.set_defaults(func=cmd_create)

    def cmd_set(args: argparse.Namespace) -> int:
        flag = service(args).change_flag(
            args.key, actor=args.actor, reason=args.reason, enabled=args.enabled,
            percentage=parse_percentage(args.percentage) if args.percentage is not None else None,
            allow=_users(args.allow), deny=_users(args.deny), description=args.description,
            expect_revision=args.revision)
        print(f"flag set: {describe(flag)}")
        return 0

    p = flags.add_parser("set", help="turn a flag on or off, set its percentage, allow/deny lists or description")
    p.add_argument("key")
    switch = p.add_mutually_exclusive_group()
    switch.add_argument("--on", dest="enabled", action="store_const", const=True, default=None)
    switch.add_argument("--off", dest="enabled", action="store_const", const=False)
    p.add_argument("--percentage", default=None, help="share of users who get it while on, 0-100")
    p.add_argument("--allow", default=None, help="replace the allow-list (comma-separated; \"\" empties it)")
    p.add_argument("--deny", default=None, help="replace the deny-list (comma-separated; \"\" empties it)")
    p.add_argument("--description", default=None)
    p.add_argument("--revision", type=int, default=None, help="refuse unless the flag is still at this revision")
    _add_change_options(p)
    p.set_defaults(func=cmd_set)

    def cmd_delete(args: argparse.Namespace) -> int:
        service(args).delete_flag(args.key, actor=args.actor, reason=args.reason)
        print(f"flag {args.key} deleted: hosts stop receiving it, so it is off for everyone")
        return 0

    p = flags.add_parser("delete", help="delete (archive) a flag: off for everyone")
    p.add_argument("key")
    _add_change_options(p)
    p.set_defaults(func=cmd_delete)


def _add_change_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reason", required=True, help="why, shown in the audit log (e.g. \"5% after review\")")
    p.add_argument("--actor", default=os.environ.get("USER", "operator"))

