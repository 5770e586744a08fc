"""Command-line options of `deployer demo`."""

from __future__ import annotations

import argparse


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the demo's options on `parser`."""
    parser.add_argument("--workspace", default=".demo",
                        help="folder for the repository, fleet and database (wiped first; default .demo)")
    parser.add_argument("--report", default=None, metavar="FILE", help="write a JSON report of the run here")
    parser.add_argument("--hosts", type=int, default=6, help="hosts in the local fleet (default 6, at least 4)")
    parser.add_argument("--rate", type=float, default=40.0, help="user requests per second (default 40)")
    parser.add_argument("--canary-bake", default="30s", help="canary watch time (default 30s)")
    parser.add_argument("--wave-bake", default="12s", help="watch time between later waves (default 12s)")
    parser.add_argument("--steps", type=int, default=None,
                        help="run only the first N steps of the scenario (for a quick look)")
    parser.add_argument("--step-timeout", type=float, default=300.0,
                        help="seconds a scenario step may take before the demo gives up (default 300)")
    parser.add_argument("--keep-running", action="store_true",
                        help="leave the fleet, controller and API running at the end (stop with `deployer fleet down`)")
    parser.add_argument("--base-port", type=int, default=None, help="first host port (default from config.yaml)")
    parser.add_argument("--api-port", type=int, default=None, help="API port (default from config.yaml)")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    parser.add_argument("--profile", choices=["embedded", "production"], default="embedded",
                        help="embedded (default): SQLite, in-process jobs, direct scrape; production: "
                             "config.production.yaml (PostgreSQL, Redis with two rq workers, Prometheus)")
    parser.add_argument("--backend", choices=["local", "docker"], default="local",
                        help="hosts as local processes (default) or containers on a Docker engine")
    parser.add_argument("--router", choices=["builtin", "haproxy"], default="builtin",
                        help="the built-in balancer (default) or an HAProxy the demo starts and drives over its socket")
    parser.add_argument("--engine", default="unix:///var/run/docker.sock",
                        help="Docker engine URL for --backend docker (default unix:///var/run/docker.sock)")
    parser.add_argument("--base-image", default="python:3.11-slim",
                        help="base image of the release images for --backend docker (default python:3.11-slim)")
