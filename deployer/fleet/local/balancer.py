"""An HTTP load balancer in front of the local fleet, run as its own process.

    python -m deployer.fleet.local.balancer --port 8100 \
        --upstream host-0=http://127.0.0.1:8101 --upstream host-1=http://127.0.0.1:8102

It outlives the controller (its own process group) so traffic keeps flowing while the
controller restarts. The proxy and health checks are in `balancer_app.py`, the admin API
under `/_balancer/` in `balancer_admin.py`; the controller drives it through
`balancer_client.BalancerClient`.
"""

from __future__ import annotations

import argparse
import logging

import uvicorn

from deployer.fleet.local.balancer_app import Balancer, BalancerConfig

__all__ = ["Balancer", "BalancerConfig", "main", "parse_upstream"]


def parse_upstream(text: str) -> tuple[str, str]:
    """Parse `name=http://host:port` from the command line."""
    name, sep, address = text.partition("=")
    if not sep or not name or not address.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"--upstream {text!r}: expected NAME=http://HOST:PORT")
    return name, address


def main(argv: list[str] | None = None) -> int:
    """Run the balancer until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m deployer.fleet.local.balancer", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--upstream", type=parse_upstream, action="append", default=[], metavar="NAME=URL")
    parser.add_argument("--health-interval", type=float, default=0.5, help="seconds between active checks")
    parser.add_argument("--health-path", default="/healthz")
    parser.add_argument("--connect-timeout", type=float, default=1.0)
    parser.add_argument("--read-timeout", type=float, default=60.0)
    parser.add_argument("--max-attempts", type=int, default=3)
    parser.add_argument(
        "--wait-for-host", type=float, default=0.0, help="seconds a request may wait for a host"
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # One line per health check and proxied request would drown the rotation changes.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    config = BalancerConfig(
        health_interval=args.health_interval,
        health_path=args.health_path,
        connect_timeout=args.connect_timeout,
        read_timeout=args.read_timeout,
        max_attempts=args.max_attempts,
        wait_for_host_s=args.wait_for_host,
    )
    balancer = Balancer(dict(args.upstream), config)
    uvicorn.run(
        balancer.app(),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        lifespan="on",
        # The app's Server and Date headers pass through; do not add a second copy.
        server_header=False,
        date_header=False,
        # Longer than any client's idle pool expiry, so clients never race a closing socket.
        timeout_keep_alive=75,
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
