"""The command line."""

from __future__ import annotations

from sample_app.__main__ import parse_args


def test_defaults() -> None:
    args = parse_args([])
    assert (args.host, args.port, args.database_url) == ("127.0.0.1", 8101, None)


def test_options() -> None:
    args = parse_args(["--host", "127.0.0.1", "--port", "8123", "--database-url", "sqlite:///x.db"])
    assert (args.port, args.database_url) == (8123, "sqlite:///x.db")
