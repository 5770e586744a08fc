"""End-to-end checks of a running Snapgram at a URL: a scripted user journey and a schema-driven fuzz run.

    python -m sample_app.e2e --url http://127.0.0.1:8101 [--json] [--schema-examples 20]

`journey` signs up two fresh users through the public HTTP API, has one follow the other and
post a photo, the follower find it in the feed, like it and comment on it, then checks the
counts and that the image comes back byte for byte. A failure names the step, the status and
the start of the body.

`schema` reads the app's OpenAPI schema and sends schemathesis-generated requests, valid and
invalid, for every operation (at most --schema-examples of each kind per operation, the
whole run within --schema-time-limit seconds). It fails on any server error (5xx) and on
nothing else: refusing invalid input with a 4xx is right.

Both write to the app's database (fresh users, a post, generated data): run them against a
staging or canary host, not one whose data matters. Exit status: 0 every check passed, 1 a
check failed, 2 bad usage or the URL does not answer.
"""

from __future__ import annotations

import argparse
import json
import secrets
import struct
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

USER_HEADER = "X-Snapgram-User"  # the same header the app reads (gates.USER_HEADER); no import: standalone tool
CHECKS = ("journey", "schema")
BODY_EXCERPT = 200


def tiny_png(size: int = 4, pixel: bytes = b"\x10\x80\xf0") -> bytes:
    """Return a valid size x size PNG of one colour."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    rows = b"".join(b"\x00" + pixel * size for _ in range(size))  # filter byte 0 per row
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@dataclass
class CheckResult:
    """The outcome of one check, JSON-ready."""

    name: str
    passed: bool = False
    seconds: float = 0.0
    error: str | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


class StepFailed(Exception):
    """A journey step got an answer it should not have."""


class Unreachable(Exception):
    """The URL does not answer HTTP at all."""


# --- the journey ------------------------------------------------------------------------


class Journey:
    """The scripted user journey, one checked step after another."""

    def __init__(self, http: httpx.Client, result: CheckResult) -> None:
        self.http = http
        self.result = result

    def step(self, name: str, method: str, path: str, expect: int, *, user: str | None = None,
             check: Callable[[httpx.Response], str | None] | None = None, **kwargs: Any) -> httpx.Response:
        """Send one request; fail the step on another status or when check returns a complaint."""
        headers = {USER_HEADER: user} if user else None
        try:
            response = self.http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise StepFailed(f"step {name}: {method} {path} -> {type(exc).__name__}: {exc}") from None
        problem = None
        if response.status_code != expect:
            problem = f"expected {expect}"
        elif check is not None:
            problem = check(response)
        self.result.steps.append({"step": name, "method": method, "path": path, "status": response.status_code,
                                  "ok": problem is None})
        if problem is not None:
            raise StepFailed(f"step {name}: {method} {path} -> {response.status_code} ({problem}): {excerpt(response)}")
        return response

    def run(self) -> None:
        """Walk through the journey; raises StepFailed at the first step that goes wrong."""
        tag = secrets.token_hex(4)
        author, follower = f"e2e_{tag}_a", f"e2e_{tag}_f"
        image, caption, text = tiny_png(), f"e2e photo {tag}", f"e2e comment {tag}"
        self.step("signup-author", "POST", "/api/users", 201, user=author, json={"username": author},
                  check=field_is("username", author))
        self.step("signup-follower", "POST", "/api/users", 201, user=follower, json={"username": follower},
                  check=field_is("username", follower))
        self.step("follow", "POST", f"/api/users/{author}/follow", 200, user=follower, json={"follower": follower},
                  check=field_is("following", True))
        self.step("profile", "GET", f"/api/users/{author}", 200, user=follower, check=field_is("followers", 1))
        posted = self.step("post-photo", "POST", "/api/posts", 201, user=author,
                           data={"author": author, "caption": caption},
                           files={"image": ("e2e.png", image, "image/png")}, check=field_is("image_size", len(image)))
        post_id = posted.json().get("id")
        if not isinstance(post_id, int):
            raise StepFailed(f"step post-photo: POST /api/posts -> {posted.status_code} (no post id): {excerpt(posted)}")
        self.step("feed", "GET", "/api/feed", 200, user=follower, params={"user": follower},
                  check=lambda r: None if post_id in [p.get("id") for p in r.json().get("posts", [])]
                  else f"post {post_id} is not in the follower's feed")
        self.step("like", "POST", f"/api/posts/{post_id}/like", 200, user=follower, json={"user": follower},
                  check=field_is("likes", 1))
        self.step("comment", "POST", f"/api/posts/{post_id}/comments", 201, user=follower,
                  json={"user": follower, "text": text}, check=field_is("text", text))
        self.step("counts", "GET", f"/api/posts/{post_id}", 200, user=follower,
                  check=lambda r: None if (r.json().get("likes"), r.json().get("comments")) == (1, 1)
                  else f"likes/comments are {r.json().get('likes')}/{r.json().get('comments')}, not 1/1")
        self.step("comments", "GET", f"/api/posts/{post_id}/comments", 200, user=follower,
                  check=lambda r: None if [(c.get("user"), c.get("text")) for c in r.json()] == [(follower, text)]
                  else "the comment is not listed")
        self.step("image", "GET", f"/api/posts/{post_id}/image", 200, user=follower,
                  check=lambda r: None if r.content == image and r.headers.get("content-type") == "image/png"
                  else f"{len(r.content)} bytes of {r.headers.get('content-type')}, not the {len(image)}-byte PNG")


def field_is(name: str, expected: Any) -> Callable[[httpx.Response], str | None]:
    """A step check: the JSON answer's `name` equals expected."""

    def check(response: httpx.Response) -> str | None:
        try:
            value = response.json().get(name)
        except (ValueError, AttributeError):
            return "the answer is not a JSON object"
        return None if value == expected else f"{name} is {value!r}, not {expected!r}"

    return check


def excerpt(response: httpx.Response) -> str:
    """The start of a response body, on one line."""
    text = response.text.replace("\n", " ")
    return text[:BODY_EXCERPT] + ("..." if len(text) > BODY_EXCERPT else "")


def run_journey(http: httpx.Client) -> CheckResult:
    """Run the journey and return its result."""
    result = CheckResult("journey")
    started = time.monotonic()
    try:
        Journey(http, result).run()
        result.passed = True
    except StepFailed as exc:
        result.error = str(exc)
    except ValueError as exc:  # an answer that should be JSON is not
        result.error = f"step {len(result.steps) + 1}: unreadable answer ({exc})"
    result.seconds = round(time.monotonic() - started, 3)
    return result


# --- the schema run ---------------------------------------------------------------------


def run_schema(url: str, *, examples: int, time_limit: float, timeout: float) -> CheckResult:
    """Send schemathesis-generated requests for every operation; fail on any 5xx."""
    result = CheckResult("schema")
    started = time.monotonic()
    try:
        failures, counts = _fuzz(url, examples=examples, deadline=started + time_limit, timeout=timeout)
    except ImportError as exc:
        result.error = f"schemathesis is not installed ({exc}); pip install 'schemathesis>=4'"
    except Exception as exc:  # a schema that does not load, a transport failure mid-run
        result.error = f"{type(exc).__name__}: {exc}"
    else:
        result.details = {**counts, "failures": failures}
        result.passed = not failures
        if failures:
            first = failures[0]
            result.error = (f"{len(failures)} operation(s) answered a server error, first "
                            f"{first['operation']} -> {first['status']}: {first['body']}")
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _fuzz(url: str, *, examples: int, deadline: float, timeout: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The schemathesis run proper: (server errors, one per operation at most; counts)."""
    # Imported here, not at the top: the app's image ships without them and only this check needs them.
    import hypothesis
    import requests
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.errors import FailureGroup

    # An explicit config: a schemathesis.toml wherever this runs must not change the check.
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=schemathesis.Config(), timeout=timeout)
    session = requests.Session()
    session.trust_env = False  # straight to the URL, never through a proxy from the environment
    failures: list[dict[str, Any]] = []
    counts = {"operations": 0, "cases": 0, "statuses": {}, "timed_out": False}
    statuses: dict[str, int] = counts["statuses"]  # type: ignore[assignment]
    settings = hypothesis.settings(
        max_examples=examples, deadline=None, database=None, verbosity=hypothesis.Verbosity.quiet,
        phases=[hypothesis.Phase.generate],  # no shrinking: the first 5xx is reported as it came
        suppress_health_check=list(hypothesis.HealthCheck))
    for item in schema.get_all_operations():
        operation = item.ok()
        counts["operations"] += 1
        found: list[dict[str, Any]] = []
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            if found or time.monotonic() > deadline:
                break

            @settings
            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            def send(case: schemathesis.Case) -> None:
                if found or time.monotonic() > deadline:
                    return  # done with this operation: let hypothesis run out its remaining draws idle
                response = case.call(base_url=url, session=session, timeout=timeout)
                counts["cases"] += 1
                bucket = f"{response.status_code // 100}xx"
                statuses[bucket] = statuses.get(bucket, 0) + 1
                try:
                    case.validate_response(response, checks=[not_a_server_error])
                except FailureGroup:  # not_a_server_error failed: a 5xx
                    found.append({"operation": operation.label, "mode": mode.value, "status": response.status_code,
                                  "body": response.text[:BODY_EXCERPT].replace("\n", " "),
                                  "curl": case.as_curl_command(base_url=url)})

            try:
                send()
            except hypothesis.errors.HypothesisException:
                pass  # no valid draw for this mode (e.g. nothing invalid to send): not the app's fault
        failures.extend(found)
        if time.monotonic() > deadline:
            counts["timed_out"] = True
            break
    session.close()
    return failures, counts


# --- the command ------------------------------------------------------------------------


def probe(http: httpx.Client) -> None:
    """Raise Unreachable when nothing answers HTTP at the URL."""
    try:
        http.get("/openapi.json")
    except httpx.HTTPError as exc:
        raise Unreachable(f"{type(exc).__name__}: {exc}") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog="python -m sample_app.e2e", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="base URL of a running app, e.g. http://127.0.0.1:8101")
    parser.add_argument("--json", action="store_true", help="print one JSON object with every check's result")
    parser.add_argument("--schema-examples", type=int, default=20,
                        help="generated requests of each kind (valid, invalid) per operation (default 20)")
    parser.add_argument("--schema-time-limit", type=float, default=40.0,
                        help="seconds the schema run may take in all (default 40)")
    parser.add_argument("--checks", default=",".join(CHECKS), help=f"comma-separated, of {', '.join(CHECKS)}")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the checks against --url; 0 when all passed, 1 when one failed, 2 for bad usage or no answer."""
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage error
        return 0 if exc.code == 0 else 2
    url = args.url.rstrip("/")
    checks = [c.strip() for c in args.checks.split(",") if c.strip()]
    problem = None
    if not url.startswith(("http://", "https://")):
        problem = f"--url {args.url!r} is not an http(s) URL; use e.g. http://127.0.0.1:8101"
    elif not checks or set(checks) - set(CHECKS):
        problem = f"--checks {args.checks!r}: choose among {', '.join(CHECKS)}"
    elif args.schema_examples < 1 or args.schema_time_limit <= 0 or args.timeout <= 0:
        problem = "--schema-examples, --schema-time-limit and --timeout must be positive"
    if problem:
        print(f"e2e: {problem}", file=sys.stderr)
        return 2
    with httpx.Client(base_url=url, timeout=args.timeout, trust_env=False) as http:
        try:
            probe(http)
        except Unreachable as exc:
            print(f"e2e: {url} does not answer ({exc})", file=sys.stderr)
            return 2
        results = []
        if "journey" in checks:
            results.append(run_journey(http))
        if "schema" in checks:
            results.append(run_schema(url, examples=args.schema_examples, time_limit=args.schema_time_limit,
                                      timeout=args.timeout))
    passed = all(r.passed for r in results)
    if args.json:
        print(json.dumps({"url": url, "passed": passed, "checks": [asdict(r) for r in results]}))
    else:
        for r in results:
            summary = r.error if not r.passed else _summary(r)
            print(f"{'PASS' if r.passed else 'FAIL'} {r.name} ({r.seconds:.1f}s): {summary}")
    return 0 if passed else 1


def _summary(result: CheckResult) -> str:
    if result.name == "journey":
        return f"{len(result.steps)} steps"
    d = result.details
    return (f"{d.get('cases', 0)} requests to {d.get('operations', 0)} operations, no server error"
            + (" (time limit reached)" if d.get("timed_out") else ""))


if __name__ == "__main__":
    sys.exit(main())
