"""Command line entry point: ``python -m sample_app --host 127.0.0.1 --port 8101``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from types import FrameType

import uvicorn

from .app import create_app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog="python -m sample_app", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8101, help="port to bind (default 8101)")
    parser.add_argument(
        "--database-url",
        default=None,
        help="SQLAlchemy URL; overrides SAMPLE_APP_DATABASE_URL (default sqlite:///./sample_app.db)",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--access-log", action="store_true", help="log every request (off: it is costly)")
    parser.add_argument(
        "--graceful-timeout",
        type=float,
        default=20.0,
        help="seconds to let in-flight requests finish after SIGTERM before closing them",
    )
    return parser.parse_args(argv)


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into a normal exit with status 0."""
    # Uvicorn replaces this handler while it serves, drains, then re-raises the signal
    # once shutdown is complete; landing here afterwards (or before uvicorn started)
    # means "stopped on request", which is a success, not a crash.
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    """Run one app host until SIGTERM/SIGINT, then shut down gracefully."""
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    signal.signal(signal.SIGTERM, _exit_cleanly)
    app = create_app(database_url=args.database_url)
    try:
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            access_log=args.access_log,
            lifespan="on",
            timeout_graceful_shutdown=args.graceful_timeout,
        )
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
