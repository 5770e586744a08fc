"""`deployer users`, `deployer tokens` and the release actions (rollback, retry, mark-bad/good).

Passwords never go on the command line: they come from a prompt, stdin (`--password-stdin`)
or a file (`--password-file`), or are generated and printed once (`--generate-password`).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deployer.accounts import BadInput, generate_password, parse_role

if TYPE_CHECKING:
    from deployer.service import DeployService

ServiceFactory = Callable[[argparse.Namespace], "DeployService"]


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    """The new password and whether it was generated (and must be printed)."""
    if args.generate_password:
        return generate_password(), True
    if args.password_file:
        path = Path(args.password_file)
        if not path.is_file():
            raise BadInput(f"--password-file: \"{path}\" is not a file; give the path of a file holding the password")
        return path.read_text().rstrip("\n"), False
    if args.password_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n"), False
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise BadInput("password: the two entries differ; type the same password twice")
    return first, False


def _add_password_options(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--password-file", help="read the password from this file")
    group.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    group.add_argument("--generate-password", action="store_true", help="generate one and print it once")


def _actor() -> str:
    return os.environ.get("USER", "operator")


def add_admin_commands(sub: Any, service: ServiceFactory) -> None:
    """Register users, tokens, rollback, retry, mark-bad and mark-good."""
    users = sub.add_parser("users", help="people who sign in to the dashboard").add_subparsers(
        dest="users_cmd", required=True, metavar="ACTION")
    p = users.add_parser("add", help="add a user: deployer users add NAME --role ROLE")
    p.add_argument("name")
    p.add_argument("--role", required=True, help="viewer, release_manager or admin")
    _add_password_options(p)
    p.set_defaults(func=lambda a: _users_add(a, service(a)))
    p = users.add_parser("set-password", help="change a user's password (signs them out everywhere)")
    p.add_argument("name")
    _add_password_options(p)
    p.set_defaults(func=lambda a: _users_password(a, service(a)))
    for name, disabled in (("disable", True), ("enable", False)):
        p = users.add_parser(name, help=f"{name} a user")
        p.add_argument("name")
        p.set_defaults(func=lambda a, d=disabled: _print(service(a).accounts.set_disabled(
            name=a.name, disabled=d, actor=_actor()), f"user {a.name} {'disabled' if d else 'enabled'}"))
    users.add_parser("list", help="list users").set_defaults(func=lambda a: _users_list(service(a)))

    tokens = sub.add_parser("tokens", help="API tokens for machines (hooks, scripts)").add_subparsers(
        dest="tokens_cmd", required=True, metavar="ACTION")
    p = tokens.add_parser("create", help="create a token: deployer tokens create --role ROLE --name NAME")
    p.add_argument("--name", required=True)
    p.add_argument("--role", required=True, help="viewer, release_manager or admin")
    p.set_defaults(func=lambda a: _tokens_create(a, service(a)))
    p = tokens.add_parser("revoke", help="revoke a token by id")
    p.add_argument("id", type=int)
    p.set_defaults(func=lambda a: _print(service(a).accounts.revoke_token(token_id=a.id, actor=_actor()),
                                         f"token {a.id} revoked"))
    tokens.add_parser("list", help="list tokens (never their secrets)").set_defaults(
        func=lambda a: _tokens_list(service(a)))

    p = sub.add_parser("rollback", help="deploy an earlier good release again (and lock the pipeline)")
    p.add_argument("release", type=int, help="the release id to go back to")
    p.add_argument("--reason", required=True)
    p.add_argument("--fast", action="store_true", help="skip the bake and the canary analysis")
    p.add_argument("--actor", default=_actor())
    p.set_defaults(func=lambda a: _print(service(a).rollback(a.release, actor=a.actor, reason=a.reason,
                                                             skip_analysis=a.fast)))
    p = sub.add_parser("retry", help="release a failed release's commits again")
    p.add_argument("release", type=int)
    p.add_argument("--reason", default="")
    p.add_argument("--actor", default=_actor())
    p.set_defaults(func=lambda a: _print(service(a).retry(a.release, actor=a.actor, reason=a.reason)))
    for name, bad in (("mark-bad", True), ("mark-good", False)):
        p = sub.add_parser(name, help=f"mark a commit {'bad (never deployed until marked good)' if bad else 'good'}")
        p.add_argument("sha")
        p.add_argument("--reason", default="")
        p.add_argument("--actor", default=_actor())
        p.set_defaults(func=lambda a, b=bad: _print(service(a).mark_commit(a.sha, bad=b, actor=a.actor,
                                                                             reason=a.reason)))


def _print(result: Any, text: str | None = None) -> int:
    print(text or getattr(result, "message", str(result)))
    return 0


def _users_add(args: argparse.Namespace, service: DeployService) -> int:
    role = parse_role(args.role)
    password, generated = _password(args)
    user = service.accounts.add_user(name=args.name, role=role, password=password, actor=_actor())
    print(f"user {user.name} added as {user.role.value}")
    if generated:
        print(f"password: {password}")
    return 0


def _users_password(args: argparse.Namespace, service: DeployService) -> int:
    password, generated = _password(args)
    service.accounts.set_password(name=args.name, password=password, actor=_actor())
    print(f"password of {args.name} changed; their sessions are signed out")
    if generated:
        print(f"password: {password}")
    return 0


def _users_list(service: DeployService) -> int:
    for user in service.accounts.users():
        print(f"{user.name:24} {user.role.value:16} {'disabled' if user.disabled else 'active':9} "
              f"{user.created_at:%Y-%m-%d}")
    return 0


def _tokens_create(args: argparse.Namespace, service: DeployService) -> int:
    created = service.accounts.create_token(name=args.name, role=parse_role(args.role), actor=_actor())
    print(f"token {created.token.id} \"{created.token.name}\" ({created.token.role.value}); "
          f"copy it now, it is not shown again:")
    print(created.secret)
    return 0


def _tokens_list(service: DeployService) -> int:
    for t in service.accounts.tokens():
        state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "active"
        used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never"
        print(f"{t.id:5} {t.name:24} {t.role.value:16} {t.prefix}…  {state:24} last used {used}")
    return 0
