"""The `deployer` command: run the controller, see its state, steer it, analyse, demo."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import OperationalError

from deployer.accounts import BadInput
from deployer.cli_admin import add_admin_commands
from deployer.cli_flags import add_flag_commands
from deployer.cli_gate import add_gate_commands
from deployer.demo.options import add_demo_arguments
from deployer.exceptions import ConfigError, Conflict, DeployerError, NotFound
from deployer.model import CommandKind
from deployer.settings import Settings, load_settings

if TYPE_CHECKING:
    from deployer.service import DeployService

DEFAULT_CONFIG = "config.yaml"


def _settings(args: argparse.Namespace) -> Settings:
    path = args.config or os.environ.get("DEPLOYER_CONFIG") or DEFAULT_CONFIG
    return load_settings(path)


def _service(args: argparse.Namespace) -> DeployService:
    from deployer.service import DeployService

    return DeployService.from_settings(_settings(args))


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "urllib3", "git", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def cmd_run(args: argparse.Namespace) -> int:
    """Run the controller loop until SIGTERM/SIGINT; it drives the fleet only while it leads."""
    from deployer.leader import Identity, build_leadership, lead
    from deployer.runtime import build_controller, build_runtime

    settings = _settings(args)
    _setup_logging(args.verbose)
    runtime = build_runtime(settings)
    stop = _stop_on_signals()

    def on_elected() -> None:
        # The router belongs to the fleet: only the leader starts (or adopts) it.
        runtime.fleet.start_router()

    notifier = _start_notifier(settings, runtime.engine)
    try:
        lead(build_controller(runtime), build_leadership(runtime.engine), stop, engine=runtime.engine,
             identity=Identity.of_this_process(), tick_s=settings.controller.tick,
             poll_s=settings.controller.leader_poll, heartbeat_s=settings.controller.heartbeat,
             on_elected=on_elected)
    finally:
        if notifier is not None:
            notifier.stop()
        runtime.close()
    return 0


def _start_notifier(settings: Settings, engine: Any) -> Any:
    """Notifications run beside the controller, in their own thread, when targets are configured."""
    if not settings.notifications.targets:
        return None
    from deployer.notify import Notifier

    notifier = Notifier(engine=engine, settings=settings.notifications)
    notifier.start()
    return notifier


def cmd_status(args: argparse.Namespace) -> int:
    """Print each host's version, the pipeline state and the last releases."""
    from deployer.status_view import render_status

    service = _service(args)
    status = service.status(releases=args.releases)
    print(status.model_dump_json(indent=2) if args.json else render_status(status))
    return 0


def cmd_command(args: argparse.Namespace) -> int:
    """Queue abort / pause / resume / promote for the deployment in flight."""
    service = _service(args)
    result = service.command(CommandKind(args.command), actor=args.actor, reason=args.reason or "",
                             deployment_id=args.deployment)
    print(f"{args.command} queued for deployment {result.deployment_id}")
    return 0


def cmd_lock(args: argparse.Namespace) -> int:
    """Lock or unlock the pipeline."""
    service = _service(args)
    if args.command == "lock":
        service.lock(holder=args.actor, reason=args.reason or "locked from the command line")
        print("pipeline locked: no new release will start")
    else:
        service.unlock(actor=args.actor)
        print("pipeline unlocked")
    return 0


def cmd_freeze(args: argparse.Namespace) -> int:
    """Freeze deploys (commits queue, merges to main are refused) or lift the freeze."""
    from deployer.model import utcnow
    from deployer.windows import parse_until

    service = _service(args)
    if args.command == "freeze":
        try:
            until = parse_until(args.until, now=utcnow()) if args.until else None
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        window = service.freeze(actor=args.actor, reason=args.reason, until=until)
        print(f"deploys frozen: {window.reason}")
    else:
        window = service.unfreeze(actor=args.actor, reason=args.reason or "")
        print("freeze lifted" + ("; releases may start" if window.open else f"; still closed: {window.reason}"))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the dashboard and the JSON API."""
    import uvicorn

    from dashboards.app import create_app

    settings = _settings(args)
    _setup_logging(args.verbose)
    uvicorn.run(create_app(settings), host=settings.api.host, port=args.port or settings.api.port,
                log_level="warning")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run an rq worker for test and build jobs."""
    from deployer.queue import run_worker

    settings = _settings(args)
    _setup_logging(args.verbose)
    run_worker(redis_url=settings.queue.redis_url, name=settings.queue.name, burst=args.burst,
               heartbeat_s=settings.queue.heartbeat, heartbeat_grace_s=settings.queue.heartbeat_grace)
    return 0


def cmd_fleet(args: argparse.Namespace) -> int:
    """List the fleet's hosts (`ps`), or stop every host and the router the platform started (`down`)."""
    from deployer.fleet import build_fleet

    settings = _settings(args)
    fleet = build_fleet(settings)
    try:
        # Asked first: an engine or process table that cannot be read fails here, naming it.
        unknown = fleet.runtime.unknown()
        if args.action == "down":
            fleet.stop_all()
            print(f"fleet stopped ({settings.fleet.backend} backend, {settings.router.kind} router)")
        else:
            print(f"{settings.fleet.backend} backend, {settings.router.kind} router, "
                  f"traffic at {fleet.traffic_url or '-'}")
            for host in fleet.hosts():
                probe = fleet.probe(host)
                print(f"{host.name:10} {probe.host.address:28} {'up' if probe.healthy else 'down':5} "
                      f"{(probe.version or '-')[:12]:12} {(probe.target or '-')[:12]:12} {probe.detail[:60]}")
        for item in unknown:
            # Carries the platform's mark but fills no slot: someone else's, or a leftover to look at.
            print(f"unknown: {item} (left alone)")
    finally:
        fleet.close()
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    """Schema migrations: upgrade, show the current revision, check it, or write a new revision."""
    from deployer import schema, store

    settings = _settings(args)
    engine = store.make_engine(settings.database_url)
    try:
        if args.action == "upgrade":
            result = schema.upgrade(engine)
            adopted = " (adopted a database made before migrations)" if result.stamped_legacy else ""
            print(f"database at revision {result.after} (was {result.before or 'empty'}){adopted}")
        elif args.action == "current":
            print(f"current {schema.current_revision(engine) or 'none'}, newest {schema.head_revision()}")
        elif args.action == "check":
            print(f"database is at the newest revision {schema.check(engine)}")
        else:
            if not args.message:
                raise ConfigError(["db revision: -m/--message is required; say what changes, e.g. -m \"add user table\""],
                                  source="command line")
            print(f"wrote {schema.new_revision(engine, message=args.message)}; review it, then commit it")
    finally:
        engine.dispose()
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Validate the configuration and print it resolved."""
    settings = _settings(args)
    print(json.dumps(settings.model_dump(mode="json", exclude={"canary_config"}), indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the scripted demo end to end."""
    from deployer.demo.runner import run_demo

    return run_demo(args)


def cmd_analyze(argv: list[str]) -> int:
    """Judge recorded baseline/canary series (see `deployer analyze --help`)."""
    from canary.cli import analyze_main

    return analyze_main(argv)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(prog="deployer", description="Continuous deployment with canary analysis.")
    parser.add_argument("-c", "--config", help="path of config.yaml (default: $DEPLOYER_CONFIG or ./config.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    sub.add_parser("run", help="run the deploy controller").set_defaults(func=cmd_run)
    p = sub.add_parser("status", help="hosts, pipeline state and last releases")
    p.add_argument("--json", action="store_true")
    p.add_argument("--releases", type=int, default=8)
    p.set_defaults(func=cmd_status)
    for name, text in (("abort", "abort the deployment in flight and roll it back"),
                       ("pause", "pause the deployment in flight"),
                       ("resume", "resume a paused deployment"),
                       ("promote", "skip the rest of the current bake and go to the next wave")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--reason", default="")
        p.add_argument("--actor", default=os.environ.get("USER", "operator"))
        p.add_argument("--deployment", type=int, default=None)
        p.set_defaults(func=cmd_command, command=name)
    for name in ("lock", "unlock"):
        p = sub.add_parser(name, help=f"{name} the pipeline (no new releases while locked)")
        p.add_argument("--reason", default="")
        p.add_argument("--actor", default=os.environ.get("USER", "operator"))
        p.set_defaults(func=cmd_lock, command=name)
    p = sub.add_parser("freeze", help="freeze deploys: commits queue and merges to main are refused until it ends")
    p.add_argument("--reason", required=True, help="why, shown wherever the freeze is (e.g. \"incident 42\")")
    p.add_argument("--until", default=None,
                   help="\"4h\", \"2d\" from now, or a time such as 2026-12-24T09:00+01:00 (no zone: UTC); "
                        "default: until `deployer unfreeze`")
    p.add_argument("--actor", default=os.environ.get("USER", "operator"))
    p.set_defaults(func=cmd_freeze, command="freeze")
    p = sub.add_parser("unfreeze", help="lift the freeze (configured blackouts still apply)")
    p.add_argument("--reason", default="")
    p.add_argument("--actor", default=os.environ.get("USER", "operator"))
    p.set_defaults(func=cmd_freeze, command="unfreeze")
    add_admin_commands(sub, _service)
    add_gate_commands(sub, _service)
    add_flag_commands(sub, _service)
    p = sub.add_parser("serve", help="serve the dashboard and JSON API")
    p.add_argument("--port", type=int, default=None)
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("worker", help="run an rq worker (queue.backend: rq)")
    p.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    p.set_defaults(func=cmd_worker)
    p = sub.add_parser("fleet", help="list the fleet's hosts (ps) or stop every host and the router (down)")
    p.add_argument("action", choices=["ps", "down"])
    p.set_defaults(func=cmd_fleet)
    p = sub.add_parser("db", help="schema migrations: upgrade, current, check, revision -m MESSAGE")
    p.add_argument("action", choices=["upgrade", "current", "check", "revision"])
    p.add_argument("-m", "--message", default="", help="for revision: what the new migration changes")
    p.set_defaults(func=cmd_db)
    sub.add_parser("check-config", help="validate config.yaml and print it resolved").set_defaults(func=cmd_check)
    sub.add_parser("analyze", help="judge recorded baseline and canary series", add_help=False)
    p = sub.add_parser("demo", help="run the scripted end-to-end demo on this machine")
    add_demo_arguments(p)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: exit 0 on success, 1 on a failure, 2 on bad input or configuration."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # `analyze` has its own parser (and its own exit codes), so hand it the rest verbatim.
    if "analyze" in argv:
        return cmd_analyze(argv[argv.index("analyze") + 1:])
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except (Conflict, NotFound, BadInput) as exc:
        print(f"deployer: {exc}", file=sys.stderr)
        return 2
    except DeployerError as exc:
        print(f"deployer: {exc}", file=sys.stderr)
        return 1
    except OperationalError as exc:
        # The database could not be reached or opened: say which and what to do, not a traceback.
        reason = str(exc.orig).strip().splitlines()[-1] if exc.orig is not None else str(exc)
        print(f"deployer: cannot use the database ({reason}); check database.url, that the server runs "
              f"and that the database exists", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
