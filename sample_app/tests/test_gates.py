"""Who a request is for, the flags it sees, and where the flag settings come from."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from sample_app.app import create_app
from sample_app.flags import Flag, FlagClient
from sample_app.gates import FlagSettings, RequestFlags, evaluate_request, flags_of, request_user


def scope(headers: dict[str, str] | None = None, query: str = "") -> dict[str, object]:
    return {"type": "http", "method": "GET", "path": "/api/feed", "query_string": query.encode(),
            "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]}


def client_with(*flags: Flag) -> FlagClient:
    client = FlagClient(None)
    client._flags = {f.key: f for f in flags}  # what a refresh would have loaded
    return client


# --- request_user ---------------------------------------------------------------------------

def test_the_header_names_the_user() -> None:
    assert request_user(scope({"X-Snapgram-User": "ana"})) == "ana"
    assert request_user(scope({"x-snapgram-user": "ana"})) == "ana", "header names are case-insensitive"


def test_the_header_wins_over_the_query() -> None:
    assert request_user(scope({"X-Snapgram-User": "ana"}, "user=bob")) == "ana"


def test_the_user_query_parameter_when_there_is_no_header() -> None:
    assert request_user(scope(query="user=bob&limit=20")) == "bob"
    assert request_user(scope(query="limit=20&user=b%C3%B8b")) == "bøb"
    assert request_user(scope(query="limit=5&user=carl")) == "carl"


def test_anonymous_requests() -> None:
    assert request_user(scope()) is None
    assert request_user(scope(query="username=bob&superuser=1")) is None, "only the `user` parameter names the user"
    assert request_user(scope({"X-Snapgram-User": "   "})) is None
    assert request_user(scope(query="user=")) is None
    assert request_user(scope({"X-Snapgram-User": "x" * 65})) is None, "longer than any user id"
    assert request_user({"type": "http"}) is None


def test_a_starlette_request_works_like_its_scope() -> None:
    assert request_user(Request(scope({"X-Snapgram-User": "ana"}))) == "ana"  # type: ignore[arg-type]
    assert request_user(Request(scope(query="user=bob"))) == "bob"  # type: ignore[arg-type]


# --- the flags of one request -----------------------------------------------------------------

def test_a_request_keeps_the_variants_it_started_with() -> None:
    client = client_with(Flag("a", enabled=True, percentage=100), Flag("b", enabled=False))
    seen = evaluate_request(client, scope({"X-Snapgram-User": "ana"}))
    assert seen.variants == {"a": True, "b": False}
    client._flags = {"a": Flag("a", enabled=False)}  # a refresh while the request runs
    assert seen.is_on("a") and seen.is_on("a", "ana"), "the request's user keeps what the metrics recorded"
    assert not seen.is_on("a", "bob"), "another user is evaluated now"
    assert not seen.is_on("unknown")


def test_anonymous_requests_have_no_variants_but_can_ask() -> None:
    client = client_with(Flag("all", enabled=True, percentage=100), Flag("half", enabled=True, percentage=50))
    seen = evaluate_request(client, scope())
    assert seen.user is None and seen.variants == {}
    assert seen.is_on("all") and not seen.is_on("half")


def test_no_client_means_every_flag_off() -> None:
    seen = evaluate_request(None, scope({"X-Snapgram-User": "ana"}))
    assert seen.variants == {} and not seen.is_on("a") and seen.user == "ana"


def test_flags_of_reuses_what_the_middleware_kept() -> None:
    client = client_with(Flag("a", enabled=True, percentage=100))
    s = scope({"X-Snapgram-User": "ana"})
    first = flags_of(s, client)
    assert isinstance(first, RequestFlags) and flags_of(s, client) is first
    assert s["state"]["request_flags"] is first  # type: ignore[index]


# --- settings ---------------------------------------------------------------------------------

def test_settings_from_the_environment() -> None:
    assert FlagSettings.from_env({}) == FlagSettings(url=None, token=None, refresh_s=1.0, cache_file=None)
    env = {"SAMPLE_APP_FLAGS_URL": "http://platform:8000", "SAMPLE_APP_FLAGS_TOKEN": "s3cret",
           "SAMPLE_APP_FLAGS_REFRESH": "0.5", "SAMPLE_APP_FLAGS_CACHE": "/var/cache/flags.json"}
    assert FlagSettings.from_env(env) == FlagSettings("http://platform:8000", "s3cret", 0.5, "/var/cache/flags.json")


@pytest.mark.parametrize("raw", ["soon", "0", "-1", "inf", "nan"])
def test_a_bad_refresh_interval_is_refused_with_the_fix(raw: str) -> None:
    with pytest.raises(ValueError, match=r"SAMPLE_APP_FLAGS_REFRESH: .* is not a positive number of seconds; use e\.g\. 1"):
        FlagSettings.from_env({"SAMPLE_APP_FLAGS_REFRESH": raw})


def test_create_app_reads_the_environment_and_explicit_values_win(monkeypatch: pytest.MonkeyPatch,
                                                                    database_url: str) -> None:
    monkeypatch.setenv("SAMPLE_APP_FLAGS_URL", "http://platform.invalid:8000/")
    monkeypatch.setenv("SAMPLE_APP_FLAGS_REFRESH", "7")
    from_env = create_app(database_url, version="v").state.flags
    assert from_env.url == "http://platform.invalid:8000" and from_env.refresh_s == 7.0
    explicit = create_app(database_url, version="v", flags_url="http://other:1", flags_refresh_s=0.25).state.flags
    assert explicit.url == "http://other:1" and explicit.refresh_s == 0.25
    monkeypatch.delenv("SAMPLE_APP_FLAGS_URL")
    assert create_app(database_url, version="v").state.flags.url is None
