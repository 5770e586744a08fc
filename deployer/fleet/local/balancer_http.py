"""What the balancer changes in requests and responses on their way through (RFC 9110 7.6)."""

from __future__ import annotations

import httpx
from starlette.requests import Request
from starlette.responses import Response

# Connection-specific headers describe one hop; a proxy never forwards them.
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"proxy-connection"}
    | {b"te", b"trailer", b"trailers", b"transfer-encoding", b"upgrade"}
)


def upstream_path(request: Request) -> str:
    """Path and query exactly as the client sent them (percent-encoding untouched)."""
    path: bytes = request.scope.get("raw_path") or request.url.path.encode()
    query: bytes = request.scope.get("query_string", b"")
    return path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")


def forward_headers(request: Request) -> list[tuple[bytes, bytes]]:
    """The client's headers minus hop-by-hop ones, plus X-Forwarded-For/-Proto."""
    raw = request.headers.raw
    named_in_connection = {
        token.strip().lower().encode("latin-1")
        for key, value in raw
        if key == b"connection"
        for token in value.decode("latin-1").split(",")
    }
    # content-length is recomputed from the body we send; Host is kept as the client sent it.
    drop = HOP_BY_HOP | named_in_connection | {b"content-length", b"x-forwarded-for", b"x-forwarded-proto"}
    headers = [(k, v) for k, v in raw if k not in drop]
    client_ip = request.client.host if request.client else ""
    prior = request.headers.get("x-forwarded-for")
    forwarded = f"{prior}, {client_ip}" if prior else client_ip
    headers.append((b"x-forwarded-for", forwarded.encode("latin-1")))
    headers.append((b"x-forwarded-proto", request.url.scheme.encode("latin-1")))
    return headers


def relay_response(resp: httpx.Response, content: bytes, method: str, upstream: str) -> Response:
    """The app's response for the client: its raw body and end-to-end headers, plus X-Upstream."""
    raw = [(k.lower(), v) for k, v in resp.headers.raw if k.lower() not in HOP_BY_HOP]
    has_length = any(k == b"content-length" for k, _ in raw)
    if not has_length and method != "HEAD" and resp.status_code >= 200 and resp.status_code not in (204, 304):
        # The app streamed it chunked; we send it whole, so it needs a length.
        raw.append((b"content-length", str(len(content)).encode()))
    raw.append((b"x-upstream", upstream.encode("latin-1")))
    response = Response(content=content, status_code=resp.status_code)
    # Set after construction: a list keeps repeated headers (set-cookie) that a dict would merge.
    response.raw_headers = raw
    return response
